import { RetainedLog } from './retained-log.js'
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
  readonly #log = new RetainedLog<Delivery>()
  #ackedUpTo = 0
  #droppedUpTo = 0

  get lastSeq(): number {
    return this.#log.lastSeq
  }

  get size(): number {
    return this.#log.size
  }

  push(delivery: NewDelivery, retention: RetentionPolicy): Delivery {
    // A literal, not a spread: each `{ ...x, y }` costs a hidden class of its own on Node 20.
    const { groupId, groupSeq, senderId, kind, messageType, epoch, contentType, data, receivedAt } = delivery
    const stored: Delivery = { seq: this.lastSeq + 1, groupId, groupSeq, senderId, kind, messageType, epoch, contentType, data, receivedAt }
    this.#log.push(stored)
    this.enforce(retention, delivery.receivedAt)
    return stored
  }

  read(after: number, limit: number, retention: RetentionPolicy, now: number): DeliveryPage {
    this.enforce(retention, now)
    const gap = after < this.#droppedUpTo ? { missedFrom: after + 1, firstAvailableSeq: this.#log.firstSeq } : undefined
    return { deliveries: this.#log.after(after, limit), gap, lastSeq: this.lastSeq }
  }

  /** Drops everything up to `upTo`; returns false when upTo is beyond the last delivery. */
  ack(upTo: number): boolean {
    if (upTo > this.lastSeq) return false
    if (upTo <= this.#ackedUpTo) return true
    this.#ackedUpTo = upTo
    this.#log.dropThrough(upTo)
    return true
  }

  get ackedUpTo(): number {
    return this.#ackedUpTo
  }

  enforce(retention: RetentionPolicy, now: number): void {
    const through = this.#log.enforce(retention, now)
    if (through > this.#ackedUpTo) this.#droppedUpTo = Math.max(this.#droppedUpTo, through)
  }
}
