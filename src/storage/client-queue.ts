import type { Delivery, DeliveryPage, NewDelivery } from './store.js'

export interface RetentionPolicy {
  /** Most deliveries kept per client; older ones are dropped first. */
  readonly maxMessages: number
  /** Oldest delivery kept, in milliseconds. */
  readonly maxAgeMs: number
}

/**
 * One client's ordered queue across all its groups. Seqs grow by exactly 1. An ack drops a
 * prefix; retention drops the oldest deliveries, and remembers the highest seq it dropped
 * before it was acknowledged, so a reader behind it is told of the gap instead of guessing.
 */
export class ClientQueue {
  #items: Delivery[] = []
  /** #items[i - #head] has seq #firstSeq + i; dropping a prefix just moves #head. */
  #head = 0
  #firstSeq = 1
  #ackedUpTo = 0
  #droppedUpTo = 0

  get lastSeq(): number {
    return this.#firstSeq + this.#items.length - this.#head - 1
  }

  get size(): number {
    return this.#items.length - this.#head
  }

  push(delivery: NewDelivery, retention: RetentionPolicy): Delivery {
    // A literal, not a spread: each `{ ...x, y }` costs a hidden class of its own on Node 20.
    const { groupId, groupSeq, senderId, kind, messageType, epoch, contentType, data, receivedAt } = delivery
    const stored: Delivery = { seq: this.lastSeq + 1, groupId, groupSeq, senderId, kind, messageType, epoch, contentType, data, receivedAt }
    this.#items.push(stored)
    this.enforce(retention, delivery.receivedAt)
    return stored
  }

  read(after: number, limit: number, retention: RetentionPolicy, now: number): DeliveryPage {
    this.enforce(retention, now)
    const gap = after < this.#droppedUpTo ? { missedFrom: after + 1, firstAvailableSeq: this.#firstSeq } : undefined
    const start = this.#head + Math.max(0, after + 1 - this.#firstSeq)
    const deliveries = this.#items.slice(start, start + limit)
    return { deliveries, gap, lastSeq: this.lastSeq }
  }

  /** Drops everything up to `upTo`; returns false when upTo is beyond the last delivery. */
  ack(upTo: number): boolean {
    if (upTo > this.lastSeq) return false
    if (upTo <= this.#ackedUpTo) return true
    this.#ackedUpTo = upTo
    this.#dropThrough(upTo)
    return true
  }

  get ackedUpTo(): number {
    return this.#ackedUpTo
  }

  enforce(retention: RetentionPolicy, now: number): void {
    let drop = Math.max(0, this.size - retention.maxMessages)
    const oldest = now - retention.maxAgeMs
    while (drop < this.size && this.#items[this.#head + drop]!.receivedAt < oldest) drop++
    if (drop === 0) return
    const through = this.#firstSeq + drop - 1
    if (through > this.#ackedUpTo) this.#droppedUpTo = Math.max(this.#droppedUpTo, through)
    this.#dropThrough(through)
  }

  #dropThrough(seq: number): void {
    const count = Math.min(seq - this.#firstSeq + 1, this.size)
    if (count <= 0) return
    this.#head += count
    this.#firstSeq += count
    // Compact once the dropped prefix is the larger part, so memory follows the live size.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
  }
}
