import type { RetentionPolicy } from './client-queue.js'
import type { KeyPackageRecord } from './store.js'

/** Expired refs the SQL stores delete per claim: more than the one a claim adds, so a backlog drains. */
export const HANDED_OUT_PURGE_BATCH = 16

/** The wall clock in unix seconds, for callers that do not pass their own `now`. */
export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** How long a ref handed out without a known lifetime is remembered, in seconds. */
export const unknownLifetimeSeconds = (retention: RetentionPolicy): number => Math.ceil(retention.maxAgeMs / 1000)

/**
 * Until when (unix seconds, inclusive) a handed-out ref routes Welcomes: a Welcome can only use
 * the KeyPackage until its notAfter. A package without one (unknown lifetime) is remembered for
 * the queues' max age after the claim: a Welcome made later than that for a package claimed then
 * would be a stale join, and it would have aged out of its recipient's inbox by the same rule.
 */
export function handedOutUntil(record: KeyPackageRecord, claimedAt: number, retention: RetentionPolicy): number {
  return record.notAfter ?? claimedAt + unknownLifetimeSeconds(retention)
}

interface HandedOut {
  readonly clientId: string
  readonly expiresAt: number
}

/**
 * KeyPackageRef → the client it was handed out for, until it expires (see handedOutUntil). An
 * expired ref is never answered; expired refs are swept out when the map has doubled since the
 * last sweep, so a claim costs amortised O(1) and the map never holds more than twice what was
 * live at the last sweep (or MIN_SWEEP).
 */
export class HandedOutRefs {
  static readonly MIN_SWEEP = 1024
  readonly #refs = new Map<string, HandedOut>()
  /** Client → its refs in #refs, so forgetting a client costs its own refs, not the whole map. */
  readonly #byClient = new Map<string, Set<string>>()
  #sweepAt = HandedOutRefs.MIN_SWEEP

  get size(): number {
    return this.#refs.size
  }

  remember(ref: string, clientId: string, expiresAt: number, now: number): void {
    this.#delete(ref)
    this.#refs.set(ref, { clientId, expiresAt })
    let refs = this.#byClient.get(clientId)
    if (!refs) this.#byClient.set(clientId, (refs = new Set()))
    refs.add(ref)
    if (this.#refs.size < this.#sweepAt) return
    for (const [key, entry] of this.#refs) if (entry.expiresAt < now) this.#delete(key)
    this.#sweepAt = Math.max(HandedOutRefs.MIN_SWEEP, 2 * this.#refs.size)
  }

  #delete(ref: string): void {
    const entry = this.#refs.get(ref)
    if (entry === undefined) return
    this.#refs.delete(ref)
    const refs = this.#byClient.get(entry.clientId)!
    refs.delete(ref)
    if (refs.size === 0) this.#byClient.delete(entry.clientId)
  }

  owners(refs: readonly string[], now: number): Map<string, string> {
    const owners = new Map<string, string>()
    for (const ref of refs) {
      const entry = this.#refs.get(ref)
      if (entry !== undefined && entry.expiresAt >= now) owners.set(ref, entry.clientId)
    }
    return owners
  }

  /** Forgets every ref handed out for the client (it was deleted). */
  forget(clientId: string): void {
    for (const ref of this.#byClient.get(clientId) ?? []) this.#refs.delete(ref)
    this.#byClient.delete(clientId)
  }

  clear(): void {
    this.#refs.clear()
    this.#byClient.clear()
    this.#sweepAt = HandedOutRefs.MIN_SWEEP
  }
}
