import { RateLimiterMemory, type RateLimiterAbstract } from 'rate-limiter-flexible'
import type { RateLimit } from '../config.js'

/**
 * What the service's rate limits count: KEY_PACKAGE_CLAIM_LIMIT counts the claims of each client's
 * KeyPackages, MESSAGE_RATE_LIMIT the messages each sender relays. Fixed windows per key: its first
 * event opens a window of `duration` seconds for `points` events. consume(key) resolves while the
 * window has room and rejects with a RateLimiterRes (msBeforeNext) beyond it; any other rejection
 * is a failure of the store behind it.
 */
export type RateLimiter = Pick<RateLimiterAbstract, 'points' | 'duration' | 'consume'>

/** Which limit a counter is for: each counts in windows of its own. */
export type RateLimitKind = 'claims' | 'messages'

/**
 * Counted in this process, for the stores one instance owns (memory, a SQLite file): a record
 * and an unref'd timer per key counted in its window.
 */
export function processRateLimiter(_kind: RateLimitKind, limit: RateLimit): RateLimiter {
  return new RateLimiterMemory({ points: limit.count, duration: limit.windowSeconds })
}
