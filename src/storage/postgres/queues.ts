import type pg from 'pg'
import type { RetentionPolicy } from '../options.js'
import type { AckResult, ContentType, DeliveryKind, DeliveryPage, MessageType, QueueRead } from '../store.js'
import { MessageBytes } from '../message-bytes.js'
import { query, toBytes, transaction, withinBytes } from './database.js'

/**
 * Retention for the given clients at `now`, as ClientQueue does: drop the oldest beyond
 * maxMessages, then keep dropping from the front while the head is older than maxAgeMs.
 * What is dropped before it was acknowledged is remembered in dropped_up_to (the gap).
 * Appends apply the same rule inside append_message (migrations.ts, version 4).
 */
const ENFORCE = `
  WITH cut AS (
    SELECT q.client_id, COALESCE((
      SELECT min(d.seq) FROM deliveries d
      WHERE d.client_id = q.client_id AND d.seq > GREATEST(q.last_seq - $2, q.first_seq - 1) AND d.received_at >= $3
    ), q.last_seq + 1) - 1 AS through
    FROM client_queues q WHERE q.client_id = ANY($1::text[])
  ), dropped AS (
    DELETE FROM deliveries d USING cut WHERE d.client_id = cut.client_id AND d.seq <= cut.through
  )
  UPDATE client_queues q SET
    first_seq = cut.through + 1,
    dropped_up_to = CASE WHEN cut.through > q.acked_up_to THEN GREATEST(q.dropped_up_to, cut.through) ELSE q.dropped_up_to END
  FROM cut WHERE q.client_id = cut.client_id AND cut.through >= q.first_seq`

interface PageRow {
  /** The read's position, from 1. */
  i: number | string
  /** null when the client has no queue. */
  last_seq: number
  first_seq: number
  dropped_up_to: number
  /** received_at of the queue's oldest delivery; null when it is empty. */
  head_received_at: number | null
  seq: number | null
  group_id: string
  group_seq: number
  sender_id: string
  kind: DeliveryKind
  message_type: MessageType
  epoch: number | null
  content_type: ContentType | null
  /** A message's bytes (shared) only on the first row of it in the statement: null on the others. */
  data: Buffer | null
  /** Whether the bytes are the log's message (deliveries of kind message), not the delivery's own. */
  shared: boolean | null
  received_at: number
}

/**
 * The pages of several reads in one statement, one snapshot: each page, its queue's lastSeq, the
 * gap and what retention needs to know (the queue's length and oldest delivery) agree. `i` is
 * the read's position (from 1) in the arrays; a client without a queue gives one row of nulls.
 * A message's delivery keeps no bytes of its own (data NULL, migration 8): they are the log's,
 * and they come once per statement (`shared`: the first row of the message carries them, the
 * others none), so a message that wakes a thousand streams is not a thousand copies in one result.
 */
const PAGES = `
  SELECT r.i, q.last_seq, q.first_seq, q.dropped_up_to,
    (SELECT h.received_at FROM deliveries h WHERE h.client_id = q.client_id ORDER BY h.seq LIMIT 1) AS head_received_at,
    d.seq, d.group_id, d.group_seq, d.sender_id, d.kind, d.message_type, d.epoch, d.content_type, d.received_at, d.shared,
    CASE WHEN NOT d.shared OR row_number() OVER (PARTITION BY d.shared, d.group_id, d.group_seq ORDER BY r.i, d.seq) = 1 THEN d.data END AS data
  FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r(client_id, after, i)
  LEFT JOIN client_queues q ON q.client_id = r.client_id
  LEFT JOIN LATERAL (${withinBytes(`
    SELECT d.seq, d.group_id, d.group_seq, d.sender_id, d.kind, d.message_type, d.epoch, d.content_type,
      COALESCE(d.data, m.data) AS data, d.data IS NULL AS shared, d.received_at
    FROM deliveries d LEFT JOIN messages m ON d.data IS NULL AND m.group_id = d.group_id AND m.seq = d.group_seq
    WHERE d.client_id = q.client_id AND d.seq > r.after ORDER BY d.seq LIMIT $3`, '$4')}
  ) d ON true
  ORDER BY r.i, d.seq`

/** Reads in one statement at most: enough for the streams one message wakes in a large group. */
const MAX_READS_PER_STATEMENT = 1000

export async function readDeliveryPages(pool: pg.Pool, retention: RetentionPolicy, reads: readonly QueueRead[], limit: number, now: number, maxBytes: number): Promise<DeliveryPage[]> {
  const pages: DeliveryPage[] = []
  for (let from = 0; from < reads.length; from += MAX_READS_PER_STATEMENT) {
    pages.push(...(await readChunk(pool, retention, reads.slice(from, from + MAX_READS_PER_STATEMENT), limit, now, maxBytes)))
  }
  return pages
}

async function readChunk(pool: pg.Pool, retention: RetentionPolicy, reads: readonly QueueRead[], limit: number, now: number, maxBytes: number): Promise<DeliveryPage[]> {
  const read = async (subset: readonly QueueRead[]) => {
    const { rows } = await query<PageRow>(pool, PAGES, [subset.map((r) => r.clientId), subset.map((r) => r.after), limit, maxBytes])
    return groupRows(withSharedBytes(rows), subset.length)
  }
  const pages = await read(reads)
  // Retention is enforced (a write) only for queues whose read shows it would drop something: a
  // live stream reads after every message, and appends already enforce it.
  const due = pages.flatMap((rows, i) => {
    const head = rows[0]
    return head && head.last_seq !== null && retentionDue(head.last_seq - head.first_seq + 1, head.head_received_at, retention, now) ? [i] : []
  })
  if (due.length > 0) {
    const clients = [...new Set(due.map((i) => reads[i]!.clientId))]
    await query(pool, ENFORCE, [clients, retention.maxMessages, now - retention.maxAgeMs])
    const again = await read(due.map((i) => reads[i]!))
    due.forEach((i, k) => (pages[i] = again[k]!))
  }
  return pages.map((rows, i) => toPage(rows, reads[i]!.after))
}

/**
 * The rows with their bytes: a message's deliveries (`shared`) get one Uint8Array (MessageBytes),
 * made from the first row of it in the statement, which alone carries the bytes (PAGES).
 */
function withSharedBytes(rows: readonly PageRow[]): Array<PageRow & { bytes: Uint8Array }> {
  const messages = new MessageBytes()
  return rows.map((row) => {
    if (row.seq === null) return { ...row, bytes: EMPTY }
    if (!row.shared) return { ...row, bytes: toBytes(row.data!) }
    return { ...row, bytes: messages.of(row.group_id, row.group_seq, () => toBytes(row.data!)) }
  })
}

const EMPTY = new Uint8Array(0)

/** Rows by read position (i from 1), in seq order. */
function groupRows<R extends PageRow>(rows: readonly R[], count: number): R[][] {
  const byRead: R[][] = Array.from({ length: count }, () => [])
  for (const row of rows) byRead[Number(row.i) - 1]!.push(row)
  return byRead
}

function toPage(rows: ReadonlyArray<PageRow & { bytes: Uint8Array }>, after: number): DeliveryPage {
  const head = rows[0]
  if (!head || head.last_seq === null) return { deliveries: [], lastSeq: 0 }
  const deliveries = rows.filter((r) => r.seq !== null).map((r) => ({
    seq: r.seq!,
    groupId: r.group_id,
    groupSeq: r.group_seq,
    senderId: r.sender_id,
    kind: r.kind,
    messageType: r.message_type,
    epoch: r.epoch,
    contentType: r.content_type,
    data: r.bytes,
    receivedAt: r.received_at,
  }))
  const gap = after < head.dropped_up_to ? { missedFrom: after + 1, firstAvailableSeq: head.first_seq } : undefined
  return { deliveries, gap, lastSeq: head.last_seq }
}

export async function ackDeliveries(pool: pg.Pool, clientId: string, upTo: number): Promise<AckResult> {
  return transaction(pool, async (client) => {
    const { rows } = await client.query<{ last_seq: number; first_seq: number; acked_up_to: number }>(
      'SELECT last_seq, first_seq, acked_up_to FROM client_queues WHERE client_id = $1 FOR UPDATE', [clientId])
    const queue = rows[0] ?? { last_seq: 0, first_seq: 1, acked_up_to: 0 }
    if (upTo > queue.last_seq) return { ok: false, lastSeq: queue.last_seq }
    if (upTo <= queue.acked_up_to) return { ok: true, ackedUpTo: queue.acked_up_to, remaining: queue.last_seq - queue.first_seq + 1 }
    const firstSeq = Math.max(queue.first_seq, upTo + 1)
    await client.query('UPDATE client_queues SET acked_up_to = $2, first_seq = $3 WHERE client_id = $1', [clientId, upTo, firstSeq])
    await client.query('DELETE FROM deliveries WHERE client_id = $1 AND seq <= $2', [clientId, upTo])
    return { ok: true, ackedUpTo: upTo, remaining: queue.last_seq - firstSeq + 1 }
  })
}

/**
 * Whether retention would drop anything from a queue or Welcome inbox that keeps `kept` entries,
 * the oldest received at `oldestAt` (null: none): more than maxMessages, or the oldest too old.
 * What a read checks before it enforces retention (ENFORCE here and in welcomes.ts), a write.
 */
export function retentionDue(kept: number, oldestAt: number | null, retention: RetentionPolicy, now: number): boolean {
  return kept > retention.maxMessages || (oldestAt !== null && oldestAt < now - retention.maxAgeMs)
}
