import type BetterSqlite3 from 'better-sqlite3'
import type { RetentionPolicy } from '../options.js'
import { MessageBytes } from '../message-bytes.js'
import { dataSize, withinBudget } from '../page-budget.js'
import type { AckResult, ContentType, DeliveryKind, DeliveryPage, MessageType, NewMessage, WelcomeRecord } from '../store.js'

type Db = BetterSqlite3.Database
const buf = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength)

interface QueueRow { last_seq: number; first_seq: number; acked_up_to: number; dropped_up_to: number; last_welcome: number }

function queueRow(db: Db, clientId: string): QueueRow | undefined {
  return db.prepare('SELECT last_seq, first_seq, acked_up_to, dropped_up_to, last_welcome FROM client_queues WHERE client_id = ?').get(clientId) as QueueRow | undefined
}

/** As ClientQueue.enforce: drop beyond maxMessages, then from the front while the head is too old. */
export function enforceRetention(db: Db, clientId: string, retention: RetentionPolicy, now: number): void {
  const q = queueRow(db, clientId)
  if (!q) return
  const start = Math.max(q.last_seq - retention.maxMessages, q.first_seq - 1)
  const kept = db.prepare('SELECT min(seq) AS seq FROM deliveries WHERE client_id = ? AND seq > ? AND received_at >= ?').get(clientId, start, now - retention.maxAgeMs) as { seq: number | null }
  const through = (kept.seq ?? q.last_seq + 1) - 1
  if (through < q.first_seq) return
  db.prepare('DELETE FROM deliveries WHERE client_id = ? AND seq <= ?').run(clientId, through)
  const dropped = through > q.acked_up_to ? Math.max(q.dropped_up_to, through) : q.dropped_up_to
  db.prepare('UPDATE client_queues SET first_seq = ?, dropped_up_to = ? WHERE client_id = ?').run(through + 1, dropped, clientId)
}

/** Queues one delivery per (client, kind); the caller holds the write transaction. */
export function fanOut(
  db: Db, retention: RetentionPolicy, groupId: string, groupSeq: number, message: NewMessage,
  messageTo: readonly string[], welcomeTo: readonly string[], welcome: Uint8Array | undefined,
): void {
  const push = (clientId: string, kind: DeliveryKind) => {
    db.prepare('INSERT INTO client_queues (client_id) VALUES (?) ON CONFLICT DO NOTHING').run(clientId)
    const q = queueRow(db, clientId)!
    const isWelcome = kind === 'welcome'
    db.prepare(`INSERT INTO deliveries (client_id, seq, group_id, group_seq, sender_id, kind, message_type, epoch, content_type, data, received_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      clientId, q.last_seq + 1, groupId, groupSeq, message.senderId, kind,
      isWelcome ? 'Welcome' : message.messageType, isWelcome ? null : message.epoch, isWelcome ? 'welcome' : message.contentType,
      // A message's bytes are the log's (schema.ts); a Welcome is not in the log.
      isWelcome ? buf(welcome!) : null, message.receivedAt,
    )
    db.prepare('UPDATE client_queues SET last_seq = last_seq + 1 WHERE client_id = ?').run(clientId)
    if (isWelcome) {
      db.prepare('UPDATE client_queues SET last_welcome = last_welcome + 1 WHERE client_id = ?').run(clientId)
      db.prepare('INSERT INTO welcomes (client_id, seq, group_id, sender_id, data, received_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(clientId, q.last_welcome + 1, groupId, message.senderId, buf(welcome!), message.receivedAt)
      enforceWelcomeRetention(db, clientId, retention, message.receivedAt)
    }
    enforceRetention(db, clientId, retention, message.receivedAt)
  }
  for (const id of messageTo) push(id, 'message')
  for (const id of welcomeTo) push(id, 'welcome')
}

interface DeliveryRow {
  seq: number; group_id: string; group_seq: number; sender_id: string; kind: DeliveryKind
  message_type: MessageType; epoch: number | null; content_type: ContentType | null
  /** The delivery's own bytes (a Welcome, or a message of a deleted group); null: the log's message. */
  data: Buffer | null
  size: number
  received_at: number
}

export function readDeliveries(
  db: Db, retention: RetentionPolicy, clientId: string, after: number, limit: number, now: number, maxBytes: number,
  messageBytes = new MessageBytes(),
): DeliveryPage {
  enforceRetention(db, clientId, retention, now)
  const q = queueRow(db, clientId)
  if (!q) return { deliveries: [], lastSeq: 0 }
  // length() reads a blob's size from its record header: the bytes of what is left out are never read.
  const cursor = db.prepare(`SELECT d.seq, d.group_id, d.group_seq, d.sender_id, d.kind, d.message_type, d.epoch, d.content_type,
      d.data, length(COALESCE(d.data, m.data)) AS size, d.received_at
    FROM deliveries d LEFT JOIN messages m ON d.data IS NULL AND m.group_id = d.group_id AND m.seq = d.group_seq
    WHERE d.client_id = ? AND d.seq > ? ORDER BY d.seq LIMIT ?`).iterate(clientId, after, limit) as IterableIterator<DeliveryRow>
  const deliveries = withinBudget(cursor, (r) => r.size, maxBytes).map((r) => ({
    seq: r.seq, groupId: r.group_id, groupSeq: r.group_seq, senderId: r.sender_id, kind: r.kind, messageType: r.message_type,
    epoch: r.epoch, contentType: r.content_type,
    data: r.data ? new Uint8Array(r.data) : messageBytes.of(r.group_id, r.group_seq, () => logBytes(db, r.group_id, r.group_seq)),
    receivedAt: r.received_at,
  }))
  const gap = after < q.dropped_up_to ? { missedFrom: after + 1, firstAvailableSeq: q.first_seq } : undefined
  return { deliveries, gap, lastSeq: q.last_seq }
}

/** The bytes of message `seq` of the group's log. */
function logBytes(db: Db, groupId: string, seq: number): Uint8Array {
  return new Uint8Array((db.prepare('SELECT data FROM messages WHERE group_id = ? AND seq = ?').get(groupId, seq) as { data: Buffer }).data)
}

export function ackDeliveries(db: Db, clientId: string, upTo: number): AckResult {
  const q = queueRow(db, clientId) ?? { last_seq: 0, first_seq: 1, acked_up_to: 0 }
  if (upTo > q.last_seq) return { ok: false, lastSeq: q.last_seq }
  if (upTo <= q.acked_up_to) return { ok: true, ackedUpTo: q.acked_up_to, remaining: q.last_seq - q.first_seq + 1 }
  const firstSeq = Math.max(q.first_seq, upTo + 1)
  db.prepare('UPDATE client_queues SET acked_up_to = ?, first_seq = ? WHERE client_id = ?').run(upTo, firstSeq, clientId)
  db.prepare('DELETE FROM deliveries WHERE client_id = ? AND seq <= ?').run(clientId, upTo)
  return { ok: true, ackedUpTo: upTo, remaining: q.last_seq - firstSeq + 1 }
}

/** Empties the client's queue and Welcome inbox, keeping their seqs (Store.deleteClient); the caller holds the write transaction. */
export function emptyQueue(db: Db, clientId: string): { deliveries: number; welcomes: number } {
  const deliveries = db.prepare('DELETE FROM deliveries WHERE client_id = ?').run(clientId).changes
  const welcomes = db.prepare('DELETE FROM welcomes WHERE client_id = ?').run(clientId).changes
  db.prepare(`UPDATE client_queues SET first_seq = last_seq + 1, acked_up_to = last_seq, first_welcome = last_welcome + 1
    WHERE client_id = ?`).run(clientId)
  return { deliveries, welcomes }
}

/**
 * The Welcome inbox keeps the queue's retention (as ClientQueue.enforce): drop beyond
 * maxMessages, then from the front while the head is too old. Seqs are never renumbered.
 */
function enforceWelcomeRetention(db: Db, clientId: string, retention: RetentionPolicy, now: number): void {
  const q = db.prepare('SELECT last_welcome, first_welcome FROM client_queues WHERE client_id = ?').get(clientId) as { last_welcome: number; first_welcome: number } | undefined
  if (!q) return
  const start = Math.max(q.last_welcome - retention.maxMessages, q.first_welcome - 1)
  // Walks the (client_id, seq) key from there and stops at the first Welcome it keeps.
  const kept = db.prepare('SELECT seq FROM welcomes WHERE client_id = ? AND seq > ? AND received_at >= ? ORDER BY seq LIMIT 1')
    .get(clientId, start, now - retention.maxAgeMs) as { seq: number } | undefined
  const through = (kept?.seq ?? q.last_welcome + 1) - 1
  if (through < q.first_welcome) return
  db.prepare('DELETE FROM welcomes WHERE client_id = ? AND seq BETWEEN ? AND ?').run(clientId, q.first_welcome, through)
  db.prepare('UPDATE client_queues SET first_welcome = ? WHERE client_id = ?').run(through + 1, clientId)
}

export function readWelcomes(db: Db, retention: RetentionPolicy, clientId: string, after: number, limit: number, now: number, maxBytes: number): WelcomeRecord[] {
  enforceWelcomeRetention(db, clientId, retention, now)
  const cursor = db.prepare('SELECT * FROM welcomes WHERE client_id = ? AND seq > ? ORDER BY seq LIMIT ?').iterate(clientId, after, limit) as
    IterableIterator<{ seq: number; group_id: string; sender_id: string; data: Buffer; received_at: number }>
  return withinBudget(cursor, dataSize, maxBytes).map((r) => ({ seq: r.seq, groupId: r.group_id, senderId: r.sender_id, data: new Uint8Array(r.data), receivedAt: r.received_at }))
}
