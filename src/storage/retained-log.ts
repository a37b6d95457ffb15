import type { RetentionPolicy } from './client-queue.js'
import { worthCompacting } from './prefix-compaction.js'

/**
 * Entries with seqs 1, 2, 3, … that only ever lose a prefix: retention drops the oldest, and
 * an owner may drop through a seq (an ack). Seqs are never renumbered, so a reader pages on
 * with `after`. A client's delivery queue and its Welcome inbox are both one of these.
 */
export class RetainedLog<T extends { readonly receivedAt: number }> {
  #items: T[] = []
  /** #items[i - #head] has seq #firstSeq + i; dropping a prefix just moves #head. */
  #head = 0
  #firstSeq = 1

  get firstSeq(): number {
    return this.#firstSeq
  }

  get lastSeq(): number {
    return this.#firstSeq + this.#items.length - this.#head - 1
  }

  get size(): number {
    return this.#items.length - this.#head
  }

  /** Appends the entry with seq lastSeq + 1 (which the caller wrote into it). */
  push(entry: T): void {
    this.#items.push(entry)
  }

  /** Up to `limit` entries with seq > after, in order. */
  after(after: number, limit: number): T[] {
    const start = this.#head + Math.max(0, after + 1 - this.#firstSeq)
    return this.#items.slice(start, start + limit)
  }

  /** Drops the oldest beyond maxMessages, then from the front while too old; returns the last seq dropped, or 0. */
  enforce(retention: RetentionPolicy, now: number): number {
    let drop = Math.max(0, this.size - retention.maxMessages)
    const oldest = now - retention.maxAgeMs
    while (drop < this.size && this.#items[this.#head + drop]!.receivedAt < oldest) drop++
    if (drop === 0) return 0
    const through = this.#firstSeq + drop - 1
    this.dropThrough(through)
    return through
  }

  dropThrough(seq: number): void {
    const count = Math.min(seq - this.#firstSeq + 1, this.size)
    if (count <= 0) return
    this.#head += count
    this.#firstSeq += count
    // Compact once the dropped prefix is the larger part, so memory follows the live size.
    if (worthCompacting(this.#head, this.#items.length)) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }
}
