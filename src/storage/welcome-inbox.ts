import type { RetentionPolicy } from './client-queue.js'
import { RetainedLog } from './retained-log.js'
import type { WelcomeRecord } from './store.js'

/**
 * One client's Welcome inbox, with the retention of its delivery queue (see ClientQueue): at
 * most maxMessages, the oldest dropped first, and none older than maxAgeMs from the front.
 * Seqs grow by exactly 1 and are never renumbered, so a reader pages on with `after`.
 */
export class WelcomeInbox {
  readonly #log = new RetainedLog<WelcomeRecord>()

  get lastSeq(): number {
    return this.#log.lastSeq
  }

  get size(): number {
    return this.#log.size
  }

  push(groupId: string, senderId: string, data: Uint8Array, receivedAt: number, retention: RetentionPolicy): WelcomeRecord {
    const stored: WelcomeRecord = { seq: this.lastSeq + 1, groupId, senderId, data, receivedAt }
    this.#log.push(stored)
    this.#log.enforce(retention, receivedAt)
    return stored
  }

  /** Drops every Welcome; the next one still gets the next seq. */
  clear(): void {
    this.#log.dropThrough(this.lastSeq)
  }

  read(after: number, limit: number, retention: RetentionPolicy, now: number): WelcomeRecord[] {
    this.#log.enforce(retention, now)
    return this.#log.after(after, limit)
  }
}
