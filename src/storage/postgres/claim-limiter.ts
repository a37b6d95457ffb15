import type pg from 'pg'
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible'
import type { ClaimLimit } from '../../config.js'
import type { ClaimLimiter } from '../claim-limiter.js'
import { query, translate } from './database.js'

/** Migration 6's table; its columns are the ones RateLimiterPostgres reads and writes. */
export const CLAIM_COUNTS_TABLE = 'key_package_claim_counts'
/** An instance deletes the rows of ended windows at most this often, from a claim. */
const CLAIM_COUNTS_SWEEP_MS = 60_000

/**
 * Counted in the database, so every instance on it counts into the same window of a client:
 * N instances allow `claims` per window in all, not N × `claims`. rate-limiter-flexible's
 * RateLimiterPostgres counts (one atomic upsert per claim) in migration 6's table: it creates
 * no table of its own (`tableCreated`) and runs no timer (`clearExpiredByTimeout: false`).
 * Instead, a claim at most once a minute also deletes the rows of windows that have ended, so
 * the table holds about the clients claimed in the last window and minute, as memory would.
 * A database failure rejects as StoreUnavailableError (503), like every other statement.
 */
export function postgresClaimLimiter(pool: pg.Pool, limit: ClaimLimit): ClaimLimiter {
  const counter = new RateLimiterPostgres({
    storeClient: pool,
    storeType: 'pool',
    tableName: CLAIM_COUNTS_TABLE,
    tableCreated: true,
    clearExpiredByTimeout: false,
    keyPrefix: 'claims',
    points: limit.claims,
    duration: limit.windowSeconds,
  })
  let sweptAt = 0
  return {
    points: counter.points,
    duration: counter.duration,
    async consume(clientId: string | number): Promise<RateLimiterRes> {
      const now = Date.now()
      if (now - sweptAt >= CLAIM_COUNTS_SWEEP_MS) {
        sweptAt = now
        // Housekeeping: when it fails, rows wait for the next sweep; the claim goes on.
        sweepClaimCounts(pool, now).catch(() => {})
      }
      try {
        return await counter.consume(clientId)
      } catch (err) {
        if (err instanceof RateLimiterRes) throw err
        translate(err)
      }
    },
  }
}

/** Deletes the counts of windows that ended before `now` (unix ms); returns how many went. */
export async function sweepClaimCounts(pool: pg.Pool, now: number): Promise<number> {
  const { rowCount } = await query(pool, `DELETE FROM ${CLAIM_COUNTS_TABLE} WHERE expire < $1`, [now])
  return rowCount ?? 0
}
