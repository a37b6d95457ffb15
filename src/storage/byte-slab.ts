/** A location is chunk index × CHUNK_STRIDE + byte offset: one safe integer, so a column of them is one Float64Array. */
const CHUNK_STRIDE = 2 ** 32

/** The index of the chunk a location is in (for ByteSlab.release). */
export const chunkOf = (location: number): number => Math.floor(location / CHUNK_STRIDE)

/**
 * Packs many small byte strings (stored messages) into shared chunks. One ArrayBuffer per
 * message costs an ArrayBuffer object, a backing-store record and a malloc chunk each, and
 * 100,000 scattered 1 KB mallocs fragment the heap so that freeing them gives little back to
 * the OS. Chunks start small (a group with few messages wastes little) and double up to
 * `max`; chunks of that size are mmap'd by malloc and returned whole once unreferenced.
 * A slab keeps every chunk it made until its owner releases one (none of its values is read
 * again), so a slab belongs to one owner (one group) that knows what is still read. Bytes are placed once and addressed by location, so an owner that keeps
 * many values need not keep a view object per value (see MessageLog).
 */
export class ByteSlab {
  /** undefined: released. Indexes never move, so locations stay valid. */
  readonly #chunks: (ArrayBuffer | undefined)[] = []
  /** Index in #chunks of the chunk small values go to; -1 before the first. */
  #current = -1
  #used = 0
  #nextSize: number

  constructor(readonly first = 4096, readonly max = 1024 * 1024) {
    this.#nextSize = first
  }

  /** Copies `bytes` into the slab (a large value gets a chunk of its own); returns their location for view(). */
  place(bytes: Uint8Array): number {
    const n = bytes.length
    if (n > this.max / 8) {
      this.#chunks.push(new Uint8Array(bytes).buffer)
      return (this.#chunks.length - 1) * CHUNK_STRIDE
    }
    let chunk = this.#chunks[this.#current]
    if (!chunk || this.#used + n > chunk.byteLength) {
      while (this.#nextSize < n) this.#nextSize *= 2
      chunk = new ArrayBuffer(this.#nextSize)
      this.#current = this.#chunks.push(chunk) - 1
      this.#used = 0
      this.#nextSize = Math.min(this.max, this.#nextSize * 2)
    }
    new Uint8Array(chunk, this.#used, n).set(bytes)
    const location = this.#current * CHUNK_STRIDE + this.#used
    this.#used += n
    return location
  }

  /** A view of the `length` bytes placed at `location`; it keeps its chunk alive. */
  view(location: number, length: number): Uint8Array {
    const chunk = chunkOf(location)
    // A view made directly (subarray() goes through the species constructor, several times slower).
    return new Uint8Array(this.#chunks[chunk]!, location - chunk * CHUNK_STRIDE, length)
  }

  /**
   * Forgets chunk `index`, whose values the owner reads none of again (views already made keep
   * it alive until they go); returns false, keeping it, for the chunk values are still placed
   * into: its space is used up first (a quiet owner whose every value was dropped would
   * otherwise start a new, larger chunk for each value), and it can go once it is not current.
   */
  release(index: number): boolean {
    if (index === this.#current) return false
    this.#chunks[index] = undefined
    return true
  }

  /** Chunks not released (for tests). */
  get chunksHeld(): number {
    return this.#chunks.filter((chunk) => chunk !== undefined).length
  }

  /** A copy of `bytes` in memory of this slab: place() and view() in one. */
  copy(bytes: Uint8Array): Uint8Array {
    return this.view(this.place(bytes), bytes.length)
  }
}
