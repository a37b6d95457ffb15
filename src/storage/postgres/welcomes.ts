import type pg from 'pg'
import type { RetentionPolicy } from '../options.js'
import type { WelcomeRecord } from '../store.js'
import { query, toBytes, withinBytes } from './database.js'
import { retentionDue } from './queues.js'

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

/**
 * A page of the inbox and what retention needs to know of it (its seq range and oldest
 * Welcome), in one statement; a client without an inbox gives one row of nulls.
 */
const PAGE = `
  SELECT q.first_welcome, q.last_welcome,
    (SELECT h.received_at FROM welcomes h WHERE h.client_id = q.client_id ORDER BY h.seq LIMIT 1) AS head_received_at,
    w.seq, w.group_id, w.sender_id, w.data, w.received_at
  FROM (SELECT $1::text AS client_id) r
  LEFT JOIN client_queues q ON q.client_id = r.client_id
  LEFT JOIN LATERAL (${withinBytes(`
    SELECT seq, group_id, sender_id, data, received_at FROM welcomes
    WHERE client_id = q.client_id AND seq > $2 ORDER BY seq LIMIT $3`, '$4')}
  ) w ON true
  ORDER BY w.seq`

interface PageRow {
  first_welcome: number | null
  last_welcome: number | null
  head_received_at: number | null
  seq: number | null
  group_id: string
  sender_id: string
  data: Buffer
  received_at: number
}

/**
 * The Welcomes after `after`. Retention is enforced (a write, locking the client's counters
 * row that appends lock too) only when the page shows it would drop something, then the page
 * is read again; appends to the inbox enforce it as well.
 */
export async function readWelcomes(pool: pg.Pool, retention: RetentionPolicy, clientId: string, after: number, limit: number, now: number, maxBytes: number): Promise<WelcomeRecord[]> {
  const read = async () => (await query<PageRow>(pool, PAGE, [clientId, after, limit, maxBytes])).rows
  let rows = await read()
  const head = rows[0]
  if (head && head.first_welcome !== null && head.last_welcome !== null &&
    retentionDue(head.last_welcome - head.first_welcome + 1, head.head_received_at, retention, now)) {
    await query(pool, ENFORCE, [[clientId], retention.maxMessages, now - retention.maxAgeMs])
    rows = await read()
  }
  return rows.filter((r) => r.seq !== null).map((r) => ({ seq: r.seq!, groupId: r.group_id, senderId: r.sender_id, data: toBytes(r.data), receivedAt: r.received_at }))
}
