/**
 * The common case of the legacy framing, made cheap: a request that is one JSON object on a
 * line of its own. `JsonSplitter` hands each complete line (found with the native
 * `Buffer.indexOf`) to `parseObjectLine`; only when that says no does its byte-by-byte
 * tokenizer look at the line, so every rule of LEGACY-TCP.md keeps the tokenizer's exact
 * behaviour. "No" means: not `{…}` once whitespace is trimmed, longer than the limit, not
 * UTF-8, not exactly one JSON value (`{..}{..}` on one line, a pretty-printed object that
 * goes on over the next lines, malformed JSON), or nested deeper than the tokenizer allows.
 */

const LF = 0x0a
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

const isWhitespace = (b: number) => b === 0x20 || b === LF || b === 0x0d || b === 0x09

export interface LineLimits {
  readonly maxBytes: number
  readonly maxDepth: number
  /** A fatal UTF-8 decoder (invalid UTF-8 must fail here, and be reported by the tokenizer). */
  readonly decoder: { decode(bytes: Uint8Array): string }
}

/** What `parseObjectLine` found in bytes [from, to) of a chunk (a line without its `\n`). */
export type LineResult =
  | { readonly blank: true }
  | { readonly blank: false; readonly value: object | undefined }

const BLANK: LineResult = { blank: true }
const NOT_FAST: LineResult = { blank: false, value: undefined }

/** The object the line holds, `blank` for a line of whitespace, or `value: undefined` when the tokenizer must decide. */
export function parseObjectLine(chunk: Buffer, from: number, to: number, limits: LineLimits): LineResult {
  let start = from
  while (start < to && isWhitespace(chunk[start] as number)) start++
  if (start === to) return BLANK
  let end = to
  while (isWhitespace(chunk[end - 1] as number)) end--
  if (chunk[start] !== OPEN_BRACE || chunk[end - 1] !== CLOSE_BRACE || end - start > limits.maxBytes) return NOT_FAST
  let value: unknown
  try {
    value = JSON.parse(limits.decoder.decode(chunk.subarray(start, end)))
  } catch {
    return NOT_FAST
  }
  // Starting with `{` and parsed whole, it is one object; the tokenizer also bounds nesting.
  if (deeperThan(value as object, 1, limits.maxDepth)) return NOT_FAST
  return { blank: false, value: value as object }
}

/** True when `container`, at nesting level `level`, holds containers nested beyond `limit` levels. */
export function deeperThan(container: object, level: number, limit: number): boolean {
  if (level > limit) return true
  if (Array.isArray(container)) {
    for (const item of container) {
      if (typeof item === 'object' && item !== null && deeperThan(item as object, level + 1, limit)) return true
    }
    return false
  }
  for (const key in container) {
    const item = (container as Record<string, unknown>)[key]
    if (typeof item === 'object' && item !== null && deeperThan(item, level + 1, limit)) return true
  }
  return false
}
