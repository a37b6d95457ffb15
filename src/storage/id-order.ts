/**
 * The order of client ids in lists, on every store: code point order, which is the order of their
 * UTF-8 bytes, as PostgreSQL's "C" collation and SQLite's BINARY compare them. JavaScript's `<`
 * compares UTF-16 units instead, which puts characters above U+FFFF (surrogate pairs) before
 * U+E000–U+FFFF; a cursor (`after`) must mean the same on every store, so memory sorts with this.
 */
export function compareIds(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) return codePointRank(x) - codePointRank(y)
  }
  return a.length - b.length
}

/** Surrogates (D800–DFFF, only in pairs in an id) rank after E000–FFFF, as their code points do. */
function codePointRank(unit: number): number {
  if (unit < 0xd800) return unit
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800
}

/** A page of a list of ids: those after `after`, at most `limit` (every one when undefined). */
export interface IdPage {
  readonly after?: string
  readonly limit?: number
}

/**
 * The first ids of `ids` after `page.after` in id order, at most `page.limit`, sorted; `accept`
 * is asked only about ids that would make the page. A page keeps a heap of `limit` ids, so it
 * costs n·log(limit) comparisons, not a sort of every id.
 */
export function pageOfIds(ids: Iterable<string>, page: IdPage, accept: (id: string) => boolean = () => true): string[] {
  const { after, limit = Infinity } = page
  if (limit === Infinity) {
    // Every one (the legacy list): a sort of those after the cursor, no heap.
    const all: string[] = []
    for (const id of ids) if ((after === undefined || compareIds(id, after) > 0) && accept(id)) all.push(id)
    return all.sort(compareIds)
  }
  const heap: string[] = []
  for (const id of ids) {
    if (after !== undefined && compareIds(id, after) <= 0) continue
    if (heap.length >= limit && compareIds(id, heap[0]!) >= 0) continue
    if (!accept(id)) continue
    if (heap.length < limit) {
      heap.push(id)
      siftUp(heap, heap.length - 1)
    } else {
      heap[0] = id
      siftDown(heap, 0)
    }
  }
  return heap.sort(compareIds)
}

/** A max-heap by compareIds: heap[0] is the largest id kept. */
function siftUp(heap: string[], index: number): void {
  let i = index
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (compareIds(heap[i]!, heap[parent]!) <= 0) return
    ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
    i = parent
  }
}

function siftDown(heap: string[], index: number): void {
  let i = index
  for (;;) {
    const left = 2 * i + 1
    const right = left + 1
    let largest = i
    if (left < heap.length && compareIds(heap[left]!, heap[largest]!) > 0) largest = left
    if (right < heap.length && compareIds(heap[right]!, heap[largest]!) > 0) largest = right
    if (largest === i) return
    ;[heap[i], heap[largest]] = [heap[largest]!, heap[i]!]
    i = largest
  }
}
