import type pg from 'pg'
import type { StoreOptions } from '../options.js'
import type { AppendCondition, AppendEffects, AppendResult, MessageType, NewMessage } from '../store.js'
import { retryKeys } from '../retry-keys.js'
import { statement, toBuffer } from './database.js'

/** Expired idempotency keys of the group one append deletes, at most: more than an append adds, so a backlog drains. */
export const IDEMPOTENCY_PURGE_BATCH = 64

interface AppendRow {
  outcome: 'appended' | 'duplicate' | 'no_group' | 'not_member' | 'stale_epoch'
  seq: number | null
  epoch: number | null
  message_type: MessageType | null
  message_to: string[] | null
}

const APPEND = {
  // Named: each connection parses and plans the call once.
  name: 'append_message',
  text: `SELECT outcome, seq, epoch, message_type, message_to FROM append_message(
    p_group_id => $1, p_sender_id => $2, p_message_type => $3, p_data => $4, p_received_at => $5,
    p_message_epoch => $6, p_content_type => $7,
    p_must_be_member => $8, p_expected_epoch => $9, p_advance => $10,
    p_keys => $11, p_keys_since => $12, p_key_purge_batch => $13,
    p_group_info => $14, p_info_epoch => $15, p_info_data => $16, p_ratchet_tree => $17, p_info_stored_at => $18,
    p_welcome_to => $19, p_welcome => $20,
    p_max_messages => $21, p_keep_since => $22)`,
}

/**
 * appendMessage in one statement, so in one round trip: the server-side function
 * append_message (append-function.ts, migration 4) locks the group row first (FOR UPDATE), which serializes every
 * append, join and commit of the group across instances, so the idempotency check, the
 * membership and epoch conditions, the next seq, the effects and the fan-out all see one state.
 * The statement is its own transaction: a refused append writes nothing, and the lock is held
 * only while the server runs it, not across round trips.
 */
export async function appendMessage(
  pool: pg.Pool,
  options: StoreOptions,
  groupId: string,
  message: NewMessage,
  condition: AppendCondition,
  effects: AppendEffects,
): Promise<AppendResult> {
  const keys = retryKeys(message, condition.retry)
  const welcomeTo = effects.welcome ? [...new Set(effects.welcome.recipients)] : []
  const info = effects.groupInfo
  const { retention } = options
  const { rows } = await statement<AppendRow>(pool, {
    ...APPEND,
    values: [
      groupId, message.senderId, message.messageType, toBuffer(message.data), message.receivedAt,
      message.epoch, message.contentType,
      condition.senderMustBeMember, condition.epoch?.expected ?? null, condition.epoch?.advance ?? false,
      keys, message.receivedAt - options.idempotencyWindowMs, IDEMPOTENCY_PURGE_BATCH,
      info !== undefined, info?.epoch ?? null, info ? toBuffer(info.data) : null, info?.ratchetTree ? toBuffer(info.ratchetTree) : null, info?.storedAt ?? null,
      welcomeTo, effects.welcome ? toBuffer(effects.welcome.data) : null,
      retention.maxMessages, message.receivedAt - retention.maxAgeMs,
    ],
  })
  const row = rows[0]!
  switch (row.outcome) {
    case 'no_group':
    case 'not_member':
      return { ok: false, reason: row.outcome }
    case 'stale_epoch':
      return { ok: false, reason: 'stale_epoch', currentEpoch: row.epoch! }
    case 'duplicate':
      return { ok: true, seq: row.seq!, epoch: row.epoch!, messageType: row.message_type!, duplicate: true, recipients: [] }
    case 'appended': {
      const messageTo = row.message_to!
      const recipients = [...messageTo, ...welcomeTo.filter((r) => !messageTo.includes(r))]
      return { ok: true, seq: row.seq!, epoch: row.epoch!, messageType: row.message_type!, duplicate: false, recipients }
    }
  }
}
