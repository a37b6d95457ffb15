import type pg from 'pg'
import type { StoreOptions } from '../options.js'
import type { AppendCondition, AppendEffects, AppendResult, MessageType, NewMessage } from '../store.js'
import { toBuffer, transaction } from './database.js'
import { enforceRetention } from './queues.js'
import { enforceWelcomeRetention } from './welcomes.js'

/**
 * appendMessage in one transaction. The group row is locked first (FOR UPDATE), which
 * serializes every append, join and commit of the group across instances: the idempotency
 * check, the membership and epoch conditions, the next seq, the effects and the fan-out all
 * see one state, and a refused append rolls everything back.
 */
export async function appendMessage(
  pool: pg.Pool,
  options: StoreOptions,
  groupId: string,
  message: NewMessage,
  condition: AppendCondition,
  effects: AppendEffects,
): Promise<AppendResult> {
  return transaction(pool, async (db) => {
    const locked = await db.query<{ epoch: number; next_seq: number }>('SELECT epoch, next_seq FROM groups WHERE group_id = $1 FOR UPDATE', [groupId])
    const group = locked.rows[0]
    if (!group) return { ok: false, reason: 'no_group' }

    // Every statement after the lock sees what committed before it (READ COMMITTED).
    const keys = condition.idempotencyKeys ?? []
    const oldest = message.receivedAt - options.idempotencyWindowMs
    if (keys.length > 0) {
      const { rows } = await db.query<{ seq: number; epoch: number; message_type: MessageType }>(
        `SELECT seq, epoch, message_type FROM idempotency_keys WHERE group_id = $1 AND key = ANY($2::text[]) AND accepted_at >= $3
         ORDER BY array_position($2::text[], key) LIMIT 1`,
        [groupId, keys, oldest],
      )
      const retry = rows[0]
      if (retry) return { ok: true, seq: retry.seq, epoch: retry.epoch, messageType: retry.message_type, duplicate: true, recipients: [] }
    }
    const { rows: memberRows } = await db.query<{ client_id: string }>('SELECT client_id FROM group_members WHERE group_id = $1 ORDER BY joined', [groupId])
    const members = memberRows.map((r) => r.client_id)
    if (condition.senderMustBeMember && !members.includes(message.senderId)) return { ok: false, reason: 'not_member' }
    if (condition.epoch && condition.epoch.expected !== group.epoch) return { ok: false, reason: 'stale_epoch', currentEpoch: group.epoch }

    const seq = group.next_seq
    const epoch = group.epoch + (condition.epoch?.advance ? 1 : 0)
    await db.query(
      `INSERT INTO messages (group_id, seq, sender_id, message_type, data, received_at, epoch, content_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [groupId, seq, message.senderId, message.messageType, toBuffer(message.data), message.receivedAt, message.epoch, message.contentType],
    )
    const info = effects.groupInfo
    await db.query(
      `UPDATE groups SET next_seq = $2, epoch = $3,
         group_info_epoch = CASE WHEN $4::boolean THEN $5 ELSE group_info_epoch END,
         group_info = CASE WHEN $4::boolean THEN $6::bytea ELSE group_info END,
         ratchet_tree = CASE WHEN $4::boolean THEN $7::bytea ELSE ratchet_tree END,
         group_info_stored_at = CASE WHEN $4::boolean THEN $8 ELSE group_info_stored_at END
       WHERE group_id = $1`,
      [groupId, seq + 1, epoch, info !== undefined, info?.epoch ?? null, info && toBuffer(info.data), info?.ratchetTree ? toBuffer(info.ratchetTree) : null, info?.storedAt ?? null],
    )

    // Every member at the moment of acceptance gets it, except its sender; Welcome recipients
    // join after it and get the Welcome instead (RFC 9420 §14: Welcome only with its Commit).
    const messageTo = members.filter((m) => m !== message.senderId)
    const welcomeTo = [...new Set(effects.welcome?.recipients ?? [])]
    const recipients = [...messageTo, ...welcomeTo.filter((r) => !messageTo.includes(r))]
    if (effects.welcome && welcomeTo.length > 0) {
      await db.query('INSERT INTO group_members (group_id, client_id) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [groupId, welcomeTo])
    }
    if (recipients.length > 0) await fanOut(db, options, groupId, seq, message, messageTo, welcomeTo, effects.welcome?.data)

    if (keys.length > 0) {
      await db.query('DELETE FROM idempotency_keys WHERE group_id = $1 AND accepted_at < $2', [groupId, oldest])
      await db.query(
        `INSERT INTO idempotency_keys (group_id, key, seq, epoch, message_type, accepted_at) SELECT $1, unnest($2::text[]), $3, $4, $5, $6
         ON CONFLICT (group_id, key) DO UPDATE SET seq = EXCLUDED.seq, epoch = EXCLUDED.epoch, message_type = EXCLUDED.message_type, accepted_at = EXCLUDED.accepted_at`,
        [groupId, [...new Set(keys)], seq, epoch, message.messageType, message.receivedAt],
      )
    }
    return { ok: true, seq, epoch, messageType: message.messageType, duplicate: false, recipients }
  })
}

/**
 * Queues the message for messageTo and the Welcome for welcomeTo. The counters of all their
 * queues move in one upsert that visits the rows in client id order: concurrent appends to
 * groups that share members take the row locks in the same order, so they cannot deadlock,
 * and each client's seqs stay gap-free.
 */
async function fanOut(
  db: pg.PoolClient,
  options: StoreOptions,
  groupId: string,
  seq: number,
  message: NewMessage,
  messageTo: readonly string[],
  welcomeTo: readonly string[],
  welcome: Uint8Array | undefined,
): Promise<void> {
  const counts = new Map<string, { messages: number; welcomes: number }>()
  for (const id of messageTo) counts.set(id, { messages: 1, welcomes: 0 })
  for (const id of welcomeTo) counts.set(id, { messages: counts.get(id)?.messages ?? 0, welcomes: 1 })
  const ids = [...counts.keys()]
  const { rows } = await db.query<{ client_id: string; last_seq: number; last_welcome: number }>(
    `INSERT INTO client_queues AS q (client_id, last_seq, last_welcome)
     SELECT id, n, w FROM unnest($1::text[], $2::integer[], $3::integer[]) AS c(id, n, w) ORDER BY id COLLATE "C"
     ON CONFLICT (client_id) DO UPDATE SET last_seq = q.last_seq + EXCLUDED.last_seq, last_welcome = q.last_welcome + EXCLUDED.last_welcome
     RETURNING client_id, last_seq, last_welcome`,
    [ids, ids.map((id) => counts.get(id)!.messages + counts.get(id)!.welcomes), ids.map((id) => counts.get(id)!.welcomes)],
  )
  const deliveryClients: string[] = []
  const deliverySeqs: number[] = []
  const deliveryKinds: string[] = []
  const welcomeClients: string[] = []
  const welcomeSeqs: number[] = []
  for (const row of rows) {
    const count = counts.get(row.client_id)!
    let next = row.last_seq - count.messages - count.welcomes + 1
    if (count.messages) {
      deliveryClients.push(row.client_id)
      deliverySeqs.push(next++)
      deliveryKinds.push('message')
    }
    if (count.welcomes) {
      deliveryClients.push(row.client_id)
      deliverySeqs.push(next++)
      deliveryKinds.push('welcome')
      welcomeClients.push(row.client_id)
      welcomeSeqs.push(row.last_welcome)
    }
  }
  await db.query(
    `INSERT INTO deliveries (client_id, seq, group_id, group_seq, sender_id, kind, message_type, epoch, content_type, data, received_at)
     SELECT c.id, c.seq, $4, $5, $6, c.kind,
       CASE WHEN c.kind = 'welcome' THEN 'Welcome' ELSE $7 END,
       CASE WHEN c.kind = 'welcome' THEN NULL ELSE $8::bigint END,
       CASE WHEN c.kind = 'welcome' THEN 'welcome' ELSE $9 END,
       CASE WHEN c.kind = 'welcome' THEN $11::bytea ELSE $10::bytea END,
       $12
     FROM unnest($1::text[], $2::bigint[], $3::text[]) AS c(id, seq, kind)`,
    [deliveryClients, deliverySeqs, deliveryKinds, groupId, seq, message.senderId, message.messageType, message.epoch, message.contentType, toBuffer(message.data), welcome ? toBuffer(welcome) : null, message.receivedAt],
  )
  if (welcomeClients.length > 0) {
    await db.query(
      `INSERT INTO welcomes (client_id, seq, group_id, sender_id, data, received_at) SELECT id, n, $3, $4, $5, $6 FROM unnest($1::text[], $2::bigint[]) AS c(id, n)`,
      [welcomeClients, welcomeSeqs, groupId, message.senderId, toBuffer(welcome!), message.receivedAt],
    )
    await enforceWelcomeRetention(db, welcomeClients, options.retention, message.receivedAt)
  }
  await enforceRetention(db, ids, options.retention, message.receivedAt)
}
