import type pg from 'pg'
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible'
import type { RateLimit } from '../../config.js'
import type { RateLimiter, RateLimitKind } from '../rate-limiter.js'
import { query, translate } from './database.js'

/**
 * Migration 6's table; its columns are the ones RateLimiterPostgres reads and writes. It holds
 * the counts of every limit (its name is from when it held only claims), each under its own
 * key prefix: 'claims:<client>', 'messages:<sender>'.
 */
export const RATE_COUNTS_TABLE = 'key_package_claim_counts'
/** An instance deletes the rows of ended windows at most this often, from a counted event. */
const RATE_COUNTS_SWEEP_MS = 60_000

/**
 * Counted in the database, so every instance on it counts into the same window of a key:
 * N instances allow `count` per window in all, not N × `count`. rate-limiter-flexible's
 * RateLimiterPostgres counts (one atomic upsert per event) in migration 6's table: it creates
 * no table of its own (`tableCreated`) and runs no timer (`clearExpiredByTimeout: false`).
 * Instead, an event at most once a minute also deletes the rows of windows that have ended, so
 * the table holds about the keys counted in the last window and minute, as memory would.
 * A database failure rejects as StoreUnavailableError (503), like every other statement.
 */
export function postgresRateLimiter(pool: pg.Pool, kind: RateLimitKind, limit: RateLimit): RateLimiter {
  const counter = new RateLimiterPostgres({
    storeClient: pool,
    storeType: 'pool',
    tableName: RATE_COUNTS_TABLE,
    tableCreated: true,
    clearExpiredByTimeout: false,
    keyPrefix: kind,
    points: limit.count,
    duration: limit.windowSeconds,
  })
  let sweptAt = 0
  return {
    points: counter.points,
    duration: counter.duration,
    async consume(key: string | number): Promise<RateLimiterRes> {
      const now = Date.now()
      if (now - sweptAt >= RATE_COUNTS_SWEEP_MS) {
        sweptAt = now
        // Housekeeping: when it fails, rows wait for the next sweep; the event is counted all the same.
        sweepRateCounts(pool, now).catch(() => {})
      }
      try {
        return await counter.consume(key)
      } catch (err) {
        if (err instanceof RateLimiterRes) throw err
        translate(err)
      }
    },
  }
}

/** Deletes the counts of windows that ended before `now` (unix ms); returns how many went. */
export async function sweepRateCounts(pool: pg.Pool, now: number): Promise<number> {
  const { rowCount } = await query(pool, `DELETE FROM ${RATE_COUNTS_TABLE} WHERE expire < $1`, [now])
  return rowCount ?? 0
}
