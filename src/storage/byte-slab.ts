/**
 * Packs many small byte strings (stored messages) into shared chunks. One ArrayBuffer per
 * message costs an ArrayBuffer object, a backing-store record and a malloc chunk each, and
 * 100,000 scattered 1 KB mallocs fragment the heap so that freeing them gives little back to
 * the OS. Chunks start small (a group with few messages wastes little) and double up to
 * `max`; chunks of that size are mmap'd by malloc and returned whole once unreferenced.
 * A copy is a view that keeps its chunk alive, so a slab belongs to one owner (one group)
 * whose data is dropped together.
 */
export class ByteSlab {
  #chunk: ArrayBuffer | undefined
  #used = 0
  #nextSize: number

  constructor(readonly first = 4096, readonly max = 1024 * 1024) {
    this.#nextSize = first
  }

  /** A copy of `bytes` in memory of this slab (a large value gets memory of its own). */
  copy(bytes: Uint8Array): Uint8Array {
    const n = bytes.length
    if (n > this.max / 8) return new Uint8Array(bytes)
    let chunk = this.#chunk
    if (!chunk || this.#used + n > chunk.byteLength) {
      while (this.#nextSize < n) this.#nextSize *= 2
      chunk = this.#chunk = new ArrayBuffer(this.#nextSize)
      this.#used = 0
      this.#nextSize = Math.min(this.max, this.#nextSize * 2)
    }
    // A view made directly (subarray() goes through the species constructor, several times slower).
    const view = new Uint8Array(chunk, this.#used, n)
    view.set(bytes)
    this.#used += n
    return view
  }
}
