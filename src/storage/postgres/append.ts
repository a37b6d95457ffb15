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
  return appendResult(rows[0]!, welcomeTo)
}

function appendResult(row: AppendRow, welcomeTo: readonly string[]): AppendResult {
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

const APPEND_BATCH = {
  name: 'append_messages',
  text: `SELECT n, outcome, seq, epoch, message_type, message_to FROM append_messages(
    p_group_id => $1, p_sender_ids => $2, p_message_types => $3, p_data => $4, p_received_at => $5,
    p_message_epochs => $6, p_content_types => $7,
    p_must_be_member => $8, p_expected_epochs => $9, p_advance => $10,
    p_first_keys => $11, p_second_keys => $12, p_keys_since => $13, p_key_purge_batch => $14,
    p_max_messages => $15, p_keep_since => $16) ORDER BY n`,
}

interface PlainAppend {
  readonly message: NewMessage
  readonly condition: AppendCondition
}

/** Plain appends (no GroupInfo, no Welcome) to one group, in this order, in one statement (append_messages). */
async function appendBatch(pool: pg.Pool, options: StoreOptions, groupId: string, appends: readonly PlainAppend[]): Promise<AppendResult[]> {
  const column = <T>(value: (a: PlainAppend) => T) => appends.map(value)
  const keys = appends.map((a) => retryKeys(a.message, a.condition.retry))
  const { rows } = await statement<AppendRow & { n: number }>(pool, {
    ...APPEND_BATCH,
    values: [
      groupId, column((a) => a.message.senderId), column((a) => a.message.messageType), column((a) => toBuffer(a.message.data)),
      column((a) => a.message.receivedAt), column((a) => a.message.epoch), column((a) => a.message.contentType),
      column((a) => a.condition.senderMustBeMember), column((a) => a.condition.epoch?.expected ?? null), column((a) => a.condition.epoch?.advance ?? false),
      keys.map((k) => k[0] ?? null), keys.map((k) => k[1] ?? null), column((a) => a.message.receivedAt - options.idempotencyWindowMs), IDEMPOTENCY_PURGE_BATCH,
      options.retention.maxMessages, column((a) => a.message.receivedAt - options.retention.maxAgeMs),
    ],
  })
  if (rows.length !== appends.length) throw new Error(`append_messages answered ${rows.length} rows for ${appends.length} appends`)
  return rows.map((row) => appendResult(row, []))
}

interface Waiting extends PlainAppend {
  resolve(result: AppendResult): void
  reject(error: unknown): void
}

/** Appends one call takes at most: a bounded statement, and the next batch starts soon. */
export const APPEND_BATCH_LIMIT = 100

/**
 * Group commit for one store. Appends to a group serialize on its row lock, so while one is in
 * flight the next ones to the same group wait here instead, and then go to the server together,
 * in arrival order, in one call of append_messages: one round trip and one commit for all of
 * them rather than one each. The first append to an idle group goes alone at once, so a quiet
 * group waits for nothing. Appends with a GroupInfo or a Welcome always go alone.
 */
export class AppendQueue {
  /** Per group with an append in flight: the plain appends waiting for it to finish. */
  readonly #waiting = new Map<string, Waiting[]>()

  readonly #pool: pg.Pool
  readonly #options: StoreOptions

  constructor(pool: pg.Pool, options: StoreOptions) {
    this.#pool = pool
    this.#options = options
  }

  append(groupId: string, message: NewMessage, condition: AppendCondition, effects: AppendEffects): Promise<AppendResult> {
    if (effects.groupInfo || effects.welcome) return appendMessage(this.#pool, this.#options, groupId, message, condition, effects)
    const waiting = this.#waiting.get(groupId)
    if (waiting) return new Promise((resolve, reject) => waiting.push({ message, condition, resolve, reject }))
    this.#waiting.set(groupId, [])
    const alone = appendMessage(this.#pool, this.#options, groupId, message, condition, effects)
    alone.then(() => this.#next(groupId), () => this.#next(groupId))
    return alone
  }

  /** Sends what waited for the group, or marks it idle. */
  #next(groupId: string): void {
    const waiting = this.#waiting.get(groupId)!
    if (waiting.length === 0) {
      this.#waiting.delete(groupId)
      return
    }
    const batch = waiting.splice(0, APPEND_BATCH_LIMIT)
    appendBatch(this.#pool, this.#options, groupId, batch).then(
      (results) => batch.forEach((a, i) => a.resolve(results[i]!)),
      (err: unknown) => batch.forEach((a) => a.reject(err)),
    ).finally(() => this.#next(groupId))
  }
}
