/**
 * What one page of a read may hold besides its `limit`: the leading entries whose data fit in
 * `maxBytes`, and always at least one (a message may be as large as MAX_MESSAGE_BYTES allows),
 * so a reader always progresses with `after` = the last seq it got. Without it a page of 1,000
 * large messages was a gigabyte in memory, and more than a JavaScript string can hold as JSON.
 */
export const NO_BYTE_LIMIT = Number.MAX_SAFE_INTEGER

/**
 * The leading entries of `entries` whose data fit in `maxBytes` (always the first). Stops
 * reading at the first that does not fit: a lazy source (a SQLite cursor) is closed there, so
 * what follows is never loaded.
 */
export function withinBudget<T>(entries: Iterable<T>, size: (entry: T) => number, maxBytes: number): T[] {
  const kept: T[] = []
  let left = maxBytes
  for (const entry of entries) {
    const bytes = size(entry)
    if (kept.length > 0 && bytes > left) break
    left -= bytes
    kept.push(entry)
  }
  return kept
}

/** The size withinBudget counts for a stored message, delivery or Welcome. */
export function dataSize(entry: { readonly data: Uint8Array }): number {
  return entry.data.length
}
