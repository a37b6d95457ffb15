import type { RetentionPolicy } from './client-queue.js'
import type { WelcomeRecord } from './store.js'

/**
 * One client's Welcome inbox, with the retention of its delivery queue (see ClientQueue): at
 * most maxMessages, the oldest dropped first, and none older than maxAgeMs from the front.
 * Seqs grow by exactly 1 and are never renumbered, so a reader pages on with `after`.
 */
export class WelcomeInbox {
  #items: WelcomeRecord[] = []
  /** #items[i - #head] has seq #firstSeq + i; dropping a prefix just moves #head. */
  #head = 0
  #firstSeq = 1

  get lastSeq(): number {
    return this.#firstSeq + this.#items.length - this.#head - 1
  }

  get size(): number {
    return this.#items.length - this.#head
  }

  push(groupId: string, senderId: string, data: Uint8Array, receivedAt: number, retention: RetentionPolicy): WelcomeRecord {
    const stored: WelcomeRecord = { seq: this.lastSeq + 1, groupId, senderId, data, receivedAt }
    this.#items.push(stored)
    this.enforce(retention, receivedAt)
    return stored
  }

  read(after: number, limit: number, retention: RetentionPolicy, now: number): WelcomeRecord[] {
    this.enforce(retention, now)
    const start = this.#head + Math.max(0, after + 1 - this.#firstSeq)
    return this.#items.slice(start, start + limit)
  }

  enforce(retention: RetentionPolicy, now: number): void {
    let drop = Math.max(0, this.size - retention.maxMessages)
    const oldest = now - retention.maxAgeMs
    while (drop < this.size && this.#items[this.#head + drop]!.receivedAt < oldest) drop++
    if (drop === 0) return
    this.#head += drop
    this.#firstSeq += drop
    // Compact once the dropped prefix is the larger part, so dropped Welcomes' bytes are freed
    // (each copied element is paid for by a dropped one: amortised O(1)).
    if (this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }
}
