import type pg from 'pg'
import type { StoreOptions } from '../options.js'
import type { AppendCondition, AppendEffects, AppendResult, MessageType, NewMessage } from '../store.js'
import { changedRef } from '../store.js'
import { retryKeys } from '../retry-keys.js'
import { statement, toBuffer, transaction } from './database.js'
import { StoreUnavailableError } from '../errors.js'

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
  const call = {
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
  }
  const refs = effects.welcome?.refs
  if (refs) {
    // A Welcome routed by the refs handed out: they are read again FOR SHARE in the same
    // transaction, so a delete of a recipient (deleteClient deletes its refs) is either done,
    // and the ref is gone, or waits until this append is.
    return transaction(pool, async (client) => {
      const { rows } = await client.query<{ ref: string; client_id: string }>(
        'SELECT ref, client_id FROM handed_out_refs WHERE ref = ANY ($1::text[]) AND expires_at >= $2 FOR SHARE',
        [[...refs.keys()], Math.floor(message.receivedAt / 1000)],
      )
      const ref = changedRef(refs, new Map(rows.map((r) => [r.ref, r.client_id])))
      if (ref !== undefined) return { ok: false, reason: 'unknown_ref', ref }
      return appendResult((await client.query<AppendRow>(call)).rows[0]!, welcomeTo)
    })
  }
  if (effects.senderJoins) {
    // An external commit: its sender joins in the same transaction, after the function has
    // locked the group row and fanned the commit out to the members before it.
    return transaction(pool, async (client) => {
      const row = (await client.query<AppendRow>(call)).rows[0]!
      if (row.outcome === 'appended') {
        await client.query('INSERT INTO group_members (group_id, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [groupId, message.senderId])
      }
      return appendResult(row, welcomeTo)
    })
  }
  const { rows } = await statement<AppendRow>(pool, call)
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

/**
 * What one call of append_messages takes at most, so that a statement stays about as large as
 * one append to a big group always was (and far inside the statement timeout): this many
 * appends, this many deliveries (appends × the group's recipients at its last append), and
 * this many bytes of messages. A call takes at least one append.
 */
export const APPEND_BATCH_LIMIT = 100
export const APPEND_BATCH_DELIVERIES = 1000
export const APPEND_BATCH_BYTES = 4 * 1024 * 1024

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
  /** Per group with an append in flight: how many recipients its last accepted append had. */
  readonly #recipients = new Map<string, number>()

  readonly #pool: pg.Pool
  readonly #options: StoreOptions

  constructor(pool: pg.Pool, options: StoreOptions) {
    this.#pool = pool
    this.#options = options
  }

  append(groupId: string, message: NewMessage, condition: AppendCondition, effects: AppendEffects): Promise<AppendResult> {
    if (effects.groupInfo || effects.welcome || effects.senderJoins) return appendMessage(this.#pool, this.#options, groupId, message, condition, effects)
    const waiting = this.#waiting.get(groupId)
    if (waiting) return new Promise((resolve, reject) => waiting.push({ message, condition, resolve, reject }))
    this.#waiting.set(groupId, [])
    const alone = appendMessage(this.#pool, this.#options, groupId, message, condition, effects)
    alone.then((result) => this.#next(groupId, [result]), (err: unknown) => this.#failed(groupId, err))
    return alone
  }

  /**
   * The call in flight failed. When the database is unavailable, what waits for the group fails
   * with it at once: sent batch after batch, each would wait for its own timeout, a queue of
   * messages growing in memory for as long as the outage lasts.
   */
  #failed(groupId: string, err: unknown): void {
    if (err instanceof StoreUnavailableError) {
      for (const waiting of this.#waiting.get(groupId)!.splice(0)) waiting.reject(err)
    }
    this.#next(groupId, [])
  }

  /** Sends what waited for the group, or marks it idle; `results` are those of the call that just ended. */
  #next(groupId: string, results: readonly AppendResult[]): void {
    const accepted = results.findLast((r) => r.ok && !r.duplicate)
    if (accepted?.ok) this.#recipients.set(groupId, accepted.recipients.length)
    const waiting = this.#waiting.get(groupId)!
    if (waiting.length === 0) {
      this.#waiting.delete(groupId)
      this.#recipients.delete(groupId)
      return
    }
    const batch = waiting.splice(0, this.#batchSize(waiting, this.#recipients.get(groupId) ?? 0))
    appendBatch(this.#pool, this.#options, groupId, batch).then(
      (batchResults) => {
        batch.forEach((a, i) => a.resolve(batchResults[i]!))
        this.#next(groupId, batchResults)
      },
      (err: unknown) => {
        batch.forEach((a) => a.reject(err))
        this.#failed(groupId, err)
      },
    )
  }

  /** How many of the waiting appends the next call takes (APPEND_BATCH_LIMIT, _DELIVERIES, _BYTES; at least one). */
  #batchSize(waiting: readonly Waiting[], recipients: number): number {
    const limit = Math.min(waiting.length, APPEND_BATCH_LIMIT, Math.max(1, Math.floor(APPEND_BATCH_DELIVERIES / Math.max(1, recipients))))
    let bytes = waiting[0]!.message.data.length
    let size = 1
    while (size < limit && (bytes += waiting[size]!.message.data.length) <= APPEND_BATCH_BYTES) size++
    return size
  }
}
