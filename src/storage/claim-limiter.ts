import { RateLimiterMemory, type RateLimiterAbstract } from 'rate-limiter-flexible'
import type { ClaimLimit } from '../config.js'

/**
 * What KEY_PACKAGE_CLAIM_LIMIT counts with: the claims of each client's KeyPackages in fixed
 * windows (a client's first claim opens a window of `duration` seconds for `points` claims).
 * consume(clientId) resolves while the window has room and rejects with a RateLimiterRes
 * (msBeforeNext) beyond it; any other rejection is a failure of the store behind it.
 */
export type ClaimLimiter = Pick<RateLimiterAbstract, 'points' | 'duration' | 'consume'>

/**
 * Counted in this process, for the stores one instance owns (memory, a SQLite file): a record
 * and an unref'd timer per client claimed in its window.
 */
export function processClaimLimiter(limit: ClaimLimit): ClaimLimiter {
  return new RateLimiterMemory({ points: limit.claims, duration: limit.windowSeconds })
}
