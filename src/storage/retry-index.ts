import { hash } from 'node:crypto'
import { worthCompacting } from './prefix-compaction.js'
import type { RetryIdentity } from './store.js'

/** What the index reads of a group's accepted messages (MessageLog), by index (seq - 1). */
export interface AcceptedMessages {
  receivedAt(index: number): number
  senderId(index: number): string
  data(index: number): Uint8Array
}

/** In #digests for a message whose bytes are not compared. */
const NO_DIGEST = -1

/**
 * The memory store's retry lookup for one group (RetryIdentity): which accepted message, if
 * any, a new one is a retry of.
 *
 * Same bytes are found by 30 bits of the SHA-256 of the bytes, a V8 small integer: a Map of
 * small integers holds no object per entry and costs the garbage collector nothing to mark,
 * where a Map keyed by text holds one string per message. With 30 bits, unrelated messages
 * share a digest now and then (about 1 in 1,000 of them in a window of a million), so a
 * match counts only when the sender and every byte are equal too, and a digest can stand
 * for several messages. Growing one such list on purpose takes about 2^30 hashes per entry.
 *
 * Client keys map to the messages that used them; the sender must match as well, so two
 * senders never share a key.
 */
export class RetryIndex {
  /** Digest → the seq, or seqs, of accepted messages with it. */
  readonly #byDigest = new Map<number, number | number[]>()
  /** Client key → the seq, or seqs, of accepted messages with it. */
  readonly #byKey = new Map<string, number | number[]>()
  /** The digest of every accepted message still indexed or not yet compacted away (seq at index i: #base + i + 1), NO_DIGEST when it has none. */
  #digests: number[] = []
  /** Messages before #digests[0]: those compacted away. */
  #base = 0
  /** The client key of each keyed message, by seq. */
  readonly #keys = new Map<number, string>()
  /** Messages before this index have left the index. */
  #expired = 0

  /** Accepted messages still indexed (for tests). */
  get size(): number {
    return this.#base + this.#digests.length - this.#expired
  }

  /**
   * The seq of the accepted message that `data` from `senderId` is a retry of, if any, where
   * `digest` is digestFor(data, retry). Messages received before `oldest` are forgotten first.
   */
  find(log: AcceptedMessages, senderId: string, data: Uint8Array, digest: number, retry: RetryIdentity | undefined, oldest: number): number | undefined {
    this.#expire(log, oldest)
    if (digest !== NO_DIGEST) {
      const seq = first(this.#byDigest.get(digest), (s) => isFrom(log, s, senderId, oldest) && sameBytes(log.data(s - 1), data))
      if (seq !== undefined) return seq
    }
    if (retry?.key === undefined) return undefined
    return first(this.#byKey.get(retry.key), (s) => isFrom(log, s, senderId, oldest))
  }

  /** Indexes accepted message `seq` under digestFor() of its bytes (every accepted message is added, in seq order). */
  add(seq: number, digest: number, retry: RetryIdentity | undefined): void {
    const expected = this.#base + this.#digests.length + 1
    if (seq !== expected) throw new Error(`RetryIndex.add: seq ${seq} out of order (expected ${expected})`)
    this.#digests.push(digest)
    if (digest !== NO_DIGEST) insert(this.#byDigest, digest, seq)
    if (retry?.key !== undefined) {
      insert(this.#byKey, retry.key, seq)
      this.#keys.set(seq, retry.key)
    }
  }

  /**
   * Forgets the messages before `seq` without reading them: they left the group's log
   * (GROUP_LOG_MAX_AGE, never shorter than the idempotency window, so they were out of it).
   */
  forgetBefore(seq: number): void {
    const last = this.#base + this.#digests.length
    while (this.#expired < Math.min(seq - 1, last)) this.#forgetNext()
    this.#compact()
  }

  /** Drops messages received before `oldest`, in seq order, up to the first that is not. */
  #expire(log: AcceptedMessages, oldest: number): void {
    const last = this.#base + this.#digests.length
    while (this.#expired < last && log.receivedAt(this.#expired) < oldest) this.#forgetNext()
    this.#compact()
  }

  #forgetNext(): void {
    const seq = ++this.#expired
    const digest = this.#digests[seq - 1 - this.#base]!
    if (digest !== NO_DIGEST) remove(this.#byDigest, digest, seq)
    if (this.#keys.size > 0) {
      const key = this.#keys.get(seq)
      if (key !== undefined) {
        remove(this.#byKey, key, seq)
        this.#keys.delete(seq)
      }
    }
  }

  /** Drops the digests of forgotten messages once they are the larger part, so memory follows the window. */
  #compact(): void {
    const stale = this.#expired - this.#base
    if (!worthCompacting(stale, this.#digests.length)) return
    this.#digests = this.#digests.slice(stale)
    this.#base = this.#expired
  }
}

/** The digest `data` is found and indexed by: digestOf(data) when same bytes count as a retry. */
export function digestFor(data: Uint8Array, retry: RetryIdentity | undefined): number {
  return retry?.sameBytes ? digestOf(data) : NO_DIGEST
}

/** 30 bits of the SHA-256 of `data`: a V8 small integer. */
export function digestOf(data: Uint8Array): number {
  // One-shot, as text: no Hash object and no Buffer per message.
  const h = hash('sha256', data, 'binary')
  return (h.charCodeAt(0) << 22) | (h.charCodeAt(1) << 14) | (h.charCodeAt(2) << 6) | (h.charCodeAt(3) >> 2)
}

function isFrom(log: AcceptedMessages, seq: number, senderId: string, oldest: number): boolean {
  return log.senderId(seq - 1) === senderId && log.receivedAt(seq - 1) >= oldest
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0
}

function first(entry: number | number[] | undefined, matches: (seq: number) => boolean): number | undefined {
  if (entry === undefined) return undefined
  if (typeof entry === 'number') return matches(entry) ? entry : undefined
  return entry.find(matches)
}

function insert<K>(map: Map<K, number | number[]>, key: K, seq: number): void {
  const entry = map.get(key)
  if (entry === undefined) map.set(key, seq)
  else if (typeof entry === 'number') map.set(key, [entry, seq])
  else entry.push(seq)
}

function remove<K>(map: Map<K, number | number[]>, key: K, seq: number): void {
  const entry = map.get(key)
  if (entry === seq) map.delete(key)
  else if (Array.isArray(entry)) {
    const rest = entry.filter((s) => s !== seq)
    if (rest.length === 1) map.set(key, rest[0]!)
    else map.set(key, rest)
  }
}
