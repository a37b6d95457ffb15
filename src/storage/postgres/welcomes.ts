import type pg from 'pg'
import type { RetentionPolicy } from '../options.js'
import type { WelcomeRecord } from '../store.js'
import { query, toBytes } from './database.js'

/**
 * Welcome inbox retention for the given clients at `now`, as their queues have it (see
 * queues.ts): drop the oldest beyond maxMessages, then keep dropping from the front while the
 * head is older than maxAgeMs. The search walks the (client_id, seq) key from the first kept
 * Welcome and stops at the first one it keeps; seqs are never renumbered. Appends apply the same
 * rule inside append_message (migrations.ts, version 4).
 */
const ENFORCE = `
  WITH cut AS (
    SELECT q.client_id, q.first_welcome, COALESCE((
      SELECT min(w.seq) FROM welcomes w
      WHERE w.client_id = q.client_id AND w.seq > GREATEST(q.last_welcome - $2, q.first_welcome - 1) AND w.received_at >= $3
    ), q.last_welcome + 1) - 1 AS through
    FROM client_queues q WHERE q.client_id = ANY($1::text[])
  ), dropped AS (
    DELETE FROM welcomes w USING cut WHERE w.client_id = cut.client_id AND w.seq BETWEEN cut.first_welcome AND cut.through
  )
  UPDATE client_queues q SET first_welcome = GREATEST(q.first_welcome, cut.through + 1)
  FROM cut WHERE q.client_id = cut.client_id AND cut.through >= q.first_welcome`

export async function readWelcomes(pool: pg.Pool, retention: RetentionPolicy, clientId: string, after: number, limit: number, now: number): Promise<WelcomeRecord[]> {
  await query(pool, ENFORCE, [[clientId], retention.maxMessages, now - retention.maxAgeMs])
  const { rows } = await query<{ seq: number; group_id: string; sender_id: string; data: Buffer; received_at: number }>(pool, `
    SELECT seq, group_id, sender_id, data, received_at FROM welcomes
    WHERE client_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, [clientId, after, limit])
  return rows.map((r) => ({ seq: r.seq, groupId: r.group_id, senderId: r.sender_id, data: toBytes(r.data), receivedAt: r.received_at }))
}
