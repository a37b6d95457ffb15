import type { RetentionPolicy } from './client-queue.js'

export type { RetentionPolicy } from './client-queue.js'

/** The policies every store applies the same way (the contract suite checks them on each). */
export interface StoreOptions {
  /**
   * Of each client's delivery queue and, alike, its Welcome inbox. maxAgeMs also bounds how long a
   * ref handed out without a known lifetime routes Welcomes (see handed-out-refs.ts).
   */
  readonly retention: RetentionPolicy
  /** How long an accepted message's idempotency keys are remembered. */
  readonly idempotencyWindowMs: number
}

export const DEFAULT_STORE_OPTIONS: StoreOptions = {
  retention: { maxMessages: 10_000, maxAgeMs: 7 * 24 * 3600_000 },
  idempotencyWindowMs: 10 * 60_000,
}
