import type pg from 'pg'
import { HANDED_OUT_PURGE_BATCH, nowSeconds, unknownLifetimeSeconds } from '../handed-out-refs.js'
import type { RetentionPolicy } from '../options.js'
import type { IdPage } from '../id-order.js'
import type { ClaimQuery, KeyPackageCount, KeyPackageRecord } from '../store.js'
import { query, toBuffer, toBytes, transaction, translate, type Queryable } from './database.js'

interface KeyPackageRow {
  ref: string
  data: Buffer
  ciphersuite: number | null
  last_resort: boolean
  legacy: boolean
  not_after: number | null
  stored_at: number
}

const COLUMNS = 'ref, data, ciphersuite, last_resort, legacy, not_after, stored_at'
/** Can be handed out at the unix seconds in `now`: legacy ones never expire. */
export const usable = (now: string) => `(legacy OR not_after IS NULL OR not_after >= ${now})`
const USABLE = usable('$2')
/**
 * Expired packages a claim deletes, at most: bounded work per claim whatever the pool holds, and
 * more than the one package a claim takes, so a backlog drains. Expired ones not yet deleted are
 * never handed out, counted or listed (USABLE), so how soon they go is only about space.
 */
export const EXPIRED_PURGE_BATCH = 16

export async function addKeyPackages(pool: pg.Pool, clientId: string, records: readonly KeyPackageRecord[], now: number): Promise<number> {
  return transaction(pool, async (client) => {
    for (const r of records) {
      const values = [clientId, r.ref, toBuffer(r.data), r.ciphersuite, r.lastResort, r.notAfter, r.storedAt]
      if (r.legacy) {
        // One legacy package per client: the new one replaces it.
        await client.query(
          `INSERT INTO key_packages (client_id, ref, data, ciphersuite, last_resort, legacy, not_after, stored_at)
           VALUES ($1, $2, $3, $4, $5, true, $6, $7)
           ON CONFLICT (client_id) WHERE legacy DO UPDATE SET ref = EXCLUDED.ref, data = EXCLUDED.data, last_resort = EXCLUDED.last_resort,
             ciphersuite = EXCLUDED.ciphersuite, not_after = EXCLUDED.not_after, stored_at = EXCLUDED.stored_at`,
          values,
        )
      } else {
        // The same ref again replaces the package and keeps its place in the upload order.
        await client.query(
          `INSERT INTO key_packages (client_id, ref, data, ciphersuite, last_resort, legacy, not_after, stored_at)
           VALUES ($1, $2, $3, $4, $5, false, $6, $7)
           ON CONFLICT (client_id, ref) WHERE NOT legacy DO UPDATE SET data = EXCLUDED.data, ciphersuite = EXCLUDED.ciphersuite,
             last_resort = EXCLUDED.last_resort, not_after = EXCLUDED.not_after, stored_at = EXCLUDED.stored_at`,
          values,
        )
      }
    }
    return (await count(client, clientId, now)).total
  })
}

/**
 * One statement, so one atomic step: purge a bounded batch of the client's expired packages
 * (soonest expired first, by key_packages_expiry; the pick below skips any still left), take the oldest consumable package
 * with `FOR UPDATE SKIP LOCKED` + `DELETE … RETURNING` (concurrent claims on other instances
 * skip it instead of waiting or taking it twice; none with $5, keptOnly), else the last-resort
 * one, else the legacy one (both kept, found by key_packages_kept), and remember the handed-out
 * ref until it expires (its notAfter, else the claim + $4 seconds: see handedOutUntil). Each claim also forgets up to a fixed batch of
 * expired refs, oldest first, by the expiry index: bounded work per claim, and more than the
 * one ref it adds, so the table follows the live refs. The chosen ref is left out of that
 * batch (one statement must not both delete and upsert a row), and locked ones are skipped.
 * The kept package is read FOR SHARE: a delete of the client's packages (deleteClient) waits
 * for the claim, so the ref it remembers is deleted with them, or the claim finds none.
 */
const CLAIM = `
  WITH purged AS (
    DELETE FROM key_packages WHERE id IN (
      SELECT id FROM key_packages WHERE client_id = $1 AND NOT legacy AND not_after < $2
      ORDER BY not_after LIMIT ${EXPIRED_PURGE_BATCH}
      FOR UPDATE SKIP LOCKED
    )
  ), claimed AS (
    DELETE FROM key_packages WHERE id = (
      SELECT id FROM key_packages
      WHERE client_id = $1 AND NOT legacy AND NOT last_resort AND ${USABLE} AND ($3::integer IS NULL OR ciphersuite = $3) AND NOT $5::boolean
      ORDER BY id LIMIT 1
      FOR UPDATE SKIP LOCKED
    )
    RETURNING ${COLUMNS}
  ), kept AS (
    SELECT ${COLUMNS} FROM key_packages
    WHERE client_id = $1 AND (last_resort OR legacy) AND NOT EXISTS (SELECT 1 FROM claimed) AND (
      (last_resort AND NOT legacy AND ${USABLE} AND ($3::integer IS NULL OR ciphersuite = $3))
      OR (legacy AND $3::integer IS NULL))
    ORDER BY legacy, id LIMIT 1
    FOR SHARE
  ), chosen AS (
    SELECT * FROM claimed UNION ALL SELECT * FROM kept
  ), handed_out AS (
    INSERT INTO handed_out_refs (ref, client_id, expires_at) SELECT ref, $1, COALESCE(not_after, $2::bigint + $4::bigint) FROM chosen WHERE NOT legacy
    ON CONFLICT (ref) DO UPDATE SET client_id = EXCLUDED.client_id, expires_at = EXCLUDED.expires_at
  ), forgotten AS (
    DELETE FROM handed_out_refs WHERE ref IN (
      SELECT ref FROM handed_out_refs WHERE expires_at < $2 AND ref NOT IN (SELECT ref FROM chosen)
      ORDER BY expires_at LIMIT ${HANDED_OUT_PURGE_BATCH}
      FOR UPDATE SKIP LOCKED
    )
  )
  SELECT * FROM chosen`

export async function claimKeyPackage(pool: pg.Pool, retention: RetentionPolicy, clientId: string, q: ClaimQuery): Promise<KeyPackageRecord | undefined> {
  const { rows } = await query<KeyPackageRow>(pool, CLAIM, [clientId, q.now, q.ciphersuite ?? null, unknownLifetimeSeconds(retention), q.keptOnly ?? false])
  return rows[0] && toRecord(rows[0])
}

export async function listKeyPackageClients(pool: pg.Pool, now: number, page: IdPage = {}): Promise<string[]> {
  // "C" compares the UTF-8 bytes, whatever the database's collation: id order (id-order.ts), along
  // the index of migration 9. LIMIT NULL is none.
  const { rows } = await query<{ client_id: string }>(pool, `SELECT DISTINCT client_id COLLATE "C" AS client_id FROM key_packages
    WHERE ${usable('$1')} AND ($2::text IS NULL OR client_id COLLATE "C" > $2::text)
    ORDER BY 1 LIMIT $3`, [now, page.after ?? null, page.limit ?? null])
  return rows.map((r) => r.client_id)
}

export async function countKeyPackages(pool: pg.Pool, clientId: string, now: number): Promise<KeyPackageCount> {
  try {
    return await count(pool, clientId, now)
  } catch (err) {
    translate(err)
  }
}

async function count(db: Queryable, clientId: string, now: number): Promise<KeyPackageCount> {
  const { rows } = await db.query<{ ciphersuite: number | null; last_resort: boolean; legacy: boolean; n: number }>(
    `SELECT ciphersuite, last_resort, legacy, count(*)::integer AS n FROM key_packages
     WHERE client_id = $1 AND ${USABLE} GROUP BY ciphersuite, last_resort, legacy`,
    [clientId, now],
  )
  const byCiphersuite = new Map<number, number>()
  let total = 0
  let lastResort = 0
  let legacy = 0
  for (const row of rows) {
    total += row.n
    if (row.legacy) {
      legacy += row.n
      continue
    }
    if (row.last_resort) lastResort += row.n
    if (row.ciphersuite !== null) byCiphersuite.set(row.ciphersuite, (byCiphersuite.get(row.ciphersuite) ?? 0) + row.n)
  }
  return { total, byCiphersuite, lastResort, legacy }
}

export async function deleteKeyPackages(pool: pg.Pool, clientId: string): Promise<number> {
  return (await query(pool, 'DELETE FROM key_packages WHERE client_id = $1', [clientId])).rowCount ?? 0
}

export async function deleteKeyPackage(pool: pg.Pool, clientId: string, ref: string): Promise<boolean> {
  // A consumable package with that ref first, else the legacy one, as memory does.
  const { rowCount } = await query(pool, `DELETE FROM key_packages WHERE id = (
    SELECT id FROM key_packages WHERE client_id = $1 AND ref = $2 ORDER BY legacy LIMIT 1)`, [clientId, ref])
  return rowCount === 1
}

/** Expired refs are left out even before a claim forgets them. */
export async function keyPackageOwners(pool: pg.Pool, refs: readonly string[], now = nowSeconds()): Promise<Map<string, string>> {
  const { rows } = await query<{ ref: string; client_id: string }>(pool,
    'SELECT ref, client_id FROM handed_out_refs WHERE ref = ANY($1::text[]) AND expires_at >= $2', [refs, now])
  return new Map(rows.map((r) => [r.ref, r.client_id]))
}

function toRecord(row: KeyPackageRow): KeyPackageRecord {
  return {
    ref: row.ref,
    data: toBytes(row.data),
    ciphersuite: row.ciphersuite,
    lastResort: row.last_resort,
    legacy: row.legacy,
    notAfter: row.not_after,
    storedAt: row.stored_at,
  }
}
