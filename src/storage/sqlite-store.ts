import Database from 'better-sqlite3'
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from './options.js'
import { SQLITE_MIGRATIONS } from './sqlite/schema.js'
import { ackDeliveries, emptyQueue, fanOut, readDeliveries, readWelcomes } from './sqlite/queues.js'
import { MessageBytes } from './message-bytes.js'
import type { IdPage } from './id-order.js'
import { HANDED_OUT_PURGE_BATCH, handedOutUntil, nowSeconds } from './handed-out-refs.js'
import { dataSize, NO_BYTE_LIMIT, withinBudget } from './page-budget.js'
import { retryKeys } from './retry-keys.js'
import { StoreUnavailableError } from './errors.js'
import type {
  AckResult, AppendCondition, AppendEffects, AppendResult, ClaimQuery, ClientDeletion, ContentType, DeliveryPage, GroupInfoRecord, GroupRecord,
  KeyPackageCount, KeyPackageRecord, MessagePage, MessageType, NewGroup, NewMessage, QueueRead, RemoveMemberResult, Store, WelcomeRecord,
} from './store.js'
import { changedRef } from './store.js'

export interface SqliteStoreOptions extends Partial<StoreOptions> {
  /** A file path, or ':memory:'. */
  readonly path: string
}

interface KeyPackageRow { ref: string; data: Buffer; ciphersuite: number | null; last_resort: number; legacy: number; not_after: number | null; stored_at: number }

const buf = (data: Uint8Array) => Buffer.from(data.buffer, data.byteOffset, data.byteLength)
const USABLE = '(legacy OR not_after IS NULL OR not_after >= @now)'
/** Expired packages a claim deletes, at most: bounded work per claim, more than the one it takes (see postgres/key-packages.ts). */
const EXPIRED_PURGE_BATCH = 16

/** Messages purgeGroupLogs drops per call, about: one write transaction must not hold the file (and the event loop) long. */
const PURGE_BATCH = 1000

/** How long an operation waits for a write lock another process holds (SQLITE_BUSY after it). */
export const BUSY_TIMEOUT_MS = 100

/**
 * The store, with SQLITE_BUSY and SQLITE_LOCKED (the file locked by another process beyond
 * BUSY_TIMEOUT_MS) turned into StoreUnavailableError, which both doors answer 503 `unavailable`
 * (retry later), as a PostgreSQL outage is; any other error stays as it is.
 */
function unavailableWhenLocked(store: SqliteStore): SqliteStore {
  const translate = (err: unknown): unknown =>
    typeof (err as { code?: unknown })?.code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test((err as { code: string }).code)
      ? new StoreUnavailableError((err as Error).message, { cause: err })
      : err
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      return (...args: unknown[]) => {
        try {
          return Promise.resolve(value.apply(target, args)).catch((err: unknown) => Promise.reject(translate(err)))
        } catch (err) {
          return Promise.reject(translate(err))
        }
      }
    },
  })
}

/**
 * The durable store for one machine without a database server. better-sqlite3 is synchronous,
 * so each operation runs to completion inside one write transaction (BEGIN IMMEDIATE): atomic
 * in this process, and serialized by SQLite's file lock against any other process.
 */
export class SqliteStore implements Store {
  readonly kind = 'sqlite'
  readonly #db: Database.Database
  readonly #options: StoreOptions

  private constructor(db: Database.Database, options: StoreOptions) {
    this.#db = db
    this.#options = options
  }

  static open(options: SqliteStoreOptions): SqliteStore {
    const db = new Database(options.path)
    db.pragma('journal_mode = WAL')
    // Every acknowledged write is on disk before the answer (a 201 survives a power cut).
    db.pragma('synchronous = FULL')
    db.pragma('foreign_keys = ON')
    // Another process holding the write lock (a backup, a sqlite3 shell): better-sqlite3 waits
    // synchronously, so every request of the process waits with it. Briefly, then 503 (below).
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`)
    db.transaction(() => {
      const version = db.pragma('user_version', { simple: true }) as number
      SQLITE_MIGRATIONS.slice(version).forEach((sql) => db.exec(sql))
      db.pragma(`user_version = ${SQLITE_MIGRATIONS.length}`)
    }).immediate()
    return unavailableWhenLocked(new SqliteStore(db, { ...DEFAULT_STORE_OPTIONS, ...withoutPath(options) }))
  }

  #tx<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(this.#db.transaction(fn).immediate())
    } catch (err) {
      return Promise.reject(err)
    }
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get()
  }

  addKeyPackages(clientId: string, records: readonly KeyPackageRecord[], now: number): Promise<number> {
    return this.#tx(() => {
      for (const r of records) {
        const row = { client: clientId, ref: r.ref, data: buf(r.data), cs: r.ciphersuite, lr: r.lastResort ? 1 : 0, na: r.notAfter, at: r.storedAt }
        if (r.legacy) this.#db.prepare('DELETE FROM key_packages WHERE client_id = @client AND legacy').run(row)
        this.#db.prepare(`INSERT INTO key_packages (client_id, ref, data, ciphersuite, last_resort, legacy, not_after, stored_at)
          VALUES (@client, @ref, @data, @cs, @lr, ${r.legacy ? 1 : 0}, @na, @at)
          ON CONFLICT (client_id, ref) WHERE NOT legacy DO UPDATE SET data = excluded.data, ciphersuite = excluded.ciphersuite,
            last_resort = excluded.last_resort, not_after = excluded.not_after, stored_at = excluded.stored_at`).run(row)
      }
      return this.#count(clientId, now).total
    })
  }

  claimKeyPackage(clientId: string, q: ClaimQuery): Promise<KeyPackageRecord | undefined> {
    return this.#tx(() => {
      const params = { client: clientId, now: q.now, cs: q.ciphersuite ?? null }
      // A bounded batch of the client's expired packages, soonest expired first, found by
      // key_packages_expiry (schema.ts): the claim costs the same whatever the pool holds.
      // Any still left are skipped by the pick (USABLE) and never counted or listed.
      this.#db.prepare(`DELETE FROM key_packages WHERE id IN (
        SELECT id FROM key_packages WHERE client_id = @client AND NOT legacy AND not_after < @now
        ORDER BY not_after LIMIT ${EXPIRED_PURGE_BATCH})`).run(params)
      // Two statements rather than \`(@cs IS NULL OR ciphersuite = @cs)\`, which SQLite cannot
      // match to an index: one suite is read from key_packages_pick, any from key_packages_order.
      const filter = q.ciphersuite === undefined || q.ciphersuite === null ? '' : 'AND ciphersuite = @cs'
      let row = q.keptOnly ? undefined : this.#db.prepare(`SELECT * FROM key_packages WHERE client_id = @client AND NOT legacy AND NOT last_resort ${filter} AND ${USABLE}
        ORDER BY id LIMIT 1`).get(params) as (KeyPackageRow & { id: number }) | undefined
      if (row) this.#db.prepare('DELETE FROM key_packages WHERE id = ?').run(row.id)
      // (last_resort OR legacy) first, so that key_packages_kept serves it.
      row ??= this.#db.prepare(`SELECT * FROM key_packages WHERE client_id = @client AND (last_resort OR legacy) AND
        ((last_resort AND NOT legacy AND (@cs IS NULL OR ciphersuite = @cs) AND ${USABLE}) OR (legacy AND @cs IS NULL)) ORDER BY legacy, id LIMIT 1`).get(params) as (KeyPackageRow & { id: number }) | undefined
      // Forgets a bounded batch of expired refs by the expiry index (more than the one a claim
      // adds, so a backlog drains), then remembers this one until it expires (handedOutUntil).
      this.#db.prepare(`DELETE FROM handed_out_refs WHERE ref IN (
        SELECT ref FROM handed_out_refs WHERE expires_at < ? ORDER BY expires_at LIMIT ${HANDED_OUT_PURGE_BATCH})`).run(q.now)
      const claimed = row && toKeyPackage(row)
      if (claimed && !claimed.legacy) {
        this.#db.prepare(`INSERT INTO handed_out_refs (ref, client_id, expires_at) VALUES (?, ?, ?)
          ON CONFLICT (ref) DO UPDATE SET client_id = excluded.client_id, expires_at = excluded.expires_at`)
          .run(claimed.ref, clientId, handedOutUntil(claimed, q.now, this.#options.retention))
      }
      return claimed
    })
  }

  async listKeyPackageClients(now: number, page: IdPage = {}): Promise<string[]> {
    // BINARY compares the UTF-8 bytes: id order (id-order.ts). LIMIT -1 is none. With a cursor,
    // its own statement, so the index is searched from the cursor on (an `@after IS NULL OR`
    // would make every page scan from the first client).
    const cursor = page.after === undefined ? '' : 'AND client_id > @after'
    const rows = this.#db.prepare(`SELECT DISTINCT client_id FROM key_packages WHERE ${USABLE} ${cursor}
      ORDER BY client_id LIMIT @limit`).all({ now, limit: page.limit ?? -1, ...(page.after === undefined ? {} : { after: page.after }) }) as { client_id: string }[]
    return rows.map((r) => r.client_id)
  }

  async countKeyPackages(clientId: string, now: number): Promise<KeyPackageCount> {
    return this.#count(clientId, now)
  }

  #count(clientId: string, now: number): KeyPackageCount {
    const rows = this.#db.prepare(`SELECT ciphersuite, last_resort, legacy, count(*) AS n FROM key_packages
      WHERE client_id = @client AND ${USABLE} GROUP BY ciphersuite, last_resort, legacy`).all({ client: clientId, now }) as { ciphersuite: number | null; last_resort: number; legacy: number; n: number }[]
    const byCiphersuite = new Map<number, number>()
    let total = 0
    let lastResort = 0
    let legacy = 0
    for (const row of rows) {
      total += row.n
      if (row.legacy) legacy += row.n
      else if (row.last_resort) lastResort += row.n
      if (!row.legacy && row.ciphersuite !== null) byCiphersuite.set(row.ciphersuite, (byCiphersuite.get(row.ciphersuite) ?? 0) + row.n)
    }
    return { total, byCiphersuite, lastResort, legacy }
  }

  async deleteKeyPackages(clientId: string): Promise<number> {
    return this.#db.prepare('DELETE FROM key_packages WHERE client_id = ?').run(clientId).changes
  }

  async deleteKeyPackage(clientId: string, ref: string): Promise<boolean> {
    return this.#db.prepare(`DELETE FROM key_packages WHERE id = (
      SELECT id FROM key_packages WHERE client_id = ? AND ref = ? ORDER BY legacy LIMIT 1)`).run(clientId, ref).changes === 1
  }

  /** Expired refs are left out even before a claim forgets them. */
  async keyPackageOwners(refs: readonly string[], now = nowSeconds()): Promise<Map<string, string>> {
    return this.#owners(refs, now)
  }

  #owners(refs: readonly string[], now: number): Map<string, string> {
    const owners = new Map<string, string>()
    const get = this.#db.prepare('SELECT client_id FROM handed_out_refs WHERE ref = ? AND expires_at >= ?')
    for (const ref of refs) {
      const row = get.get(ref, now) as { client_id: string } | undefined
      if (row) owners.set(ref, row.client_id)
    }
    return owners
  }

  createGroup(group: NewGroup): Promise<GroupRecord | undefined> {
    return this.#tx(() => {
      const inserted = this.#db.prepare('INSERT INTO groups (group_id, creator_id, epoch, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(group.groupId, group.creatorId, group.epoch, group.createdAt)
      if (inserted.changes !== 1) return undefined
      this.#db.prepare('INSERT INTO group_members (group_id, client_id) VALUES (?, ?)').run(group.groupId, group.creatorId)
      return this.#group(group.groupId)
    })
  }

  async getGroup(groupId: string): Promise<GroupRecord | undefined> {
    return this.#group(groupId)
  }

  #group(groupId: string): GroupRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM groups WHERE group_id = ?').get(groupId) as
      { creator_id: string; epoch: number; group_info_epoch: number | null; next_seq: number; created_at: number } | undefined
    if (!row) return undefined
    return {
      groupId, creatorId: row.creator_id, createdAt: row.created_at, epoch: row.epoch, groupInfoEpoch: row.group_info_epoch,
      members: this.#members(groupId), nextSeq: row.next_seq,
    }
  }

  #members(groupId: string): string[] {
    return (this.#db.prepare('SELECT client_id FROM group_members WHERE group_id = ? ORDER BY rowid').all(groupId) as { client_id: string }[]).map((r) => r.client_id)
  }

  /** Deliveries of its messages still queued outlive the group: they get their own copy of the log's bytes first. */
  deleteGroup(groupId: string): Promise<boolean> {
    return this.#tx(() => {
      this.#db.prepare(`UPDATE deliveries SET data = (SELECT m.data FROM messages m WHERE m.group_id = deliveries.group_id AND m.seq = deliveries.group_seq)
        WHERE group_id = ? AND data IS NULL`).run(groupId)
      return this.#db.prepare('DELETE FROM groups WHERE group_id = ?').run(groupId).changes === 1
    })
  }

  addMember(groupId: string, clientId: string): Promise<GroupRecord | undefined> {
    return this.#tx(() => {
      if (!this.#db.prepare('SELECT 1 FROM groups WHERE group_id = ?').get(groupId)) return undefined
      this.#db.prepare('INSERT INTO group_members (group_id, client_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(groupId, clientId)
      return this.#group(groupId)
    })
  }

  removeMember(groupId: string, clientId: string): Promise<RemoveMemberResult> {
    return this.#tx(() => {
      if (!this.#db.prepare('SELECT 1 FROM groups WHERE group_id = ?').get(groupId)) return 'no_group'
      return this.#db.prepare('DELETE FROM group_members WHERE group_id = ? AND client_id = ?').run(groupId, clientId).changes === 1 ? 'removed' : 'not_member'
    })
  }

  async listClientGroups(clientId: string, page: IdPage = {}): Promise<string[]> {
    // As listKeyPackageClients: BINARY is id order, and a cursor gets its own statement.
    const cursor = page.after === undefined ? '' : 'AND group_id > @after'
    const rows = this.#db.prepare(`SELECT group_id FROM group_members WHERE client_id = @client ${cursor} ORDER BY group_id LIMIT @limit`)
      .all({ client: clientId, limit: page.limit ?? -1, ...(page.after === undefined ? {} : { after: page.after }) }) as { group_id: string }[]
    return rows.map((r) => r.group_id)
  }

  deleteClient(clientId: string, now: number): Promise<ClientDeletion> {
    return this.#tx(() => {
      const groups = this.#db.prepare('DELETE FROM group_members WHERE client_id = ?').run(clientId).changes
      const keyPackages = this.#count(clientId, now).total
      this.#db.prepare('DELETE FROM key_packages WHERE client_id = ?').run(clientId)
      this.#db.prepare('DELETE FROM handed_out_refs WHERE client_id = ?').run(clientId)
      return { groups, keyPackages, ...emptyQueue(this.#db, clientId) }
    })
  }

  appendMessage(groupId: string, message: NewMessage, condition: AppendCondition, effects: AppendEffects = {}): Promise<AppendResult> {
    return this.#tx((): AppendResult => {
      const group = this.#db.prepare('SELECT epoch, next_seq FROM groups WHERE group_id = ?').get(groupId) as { epoch: number; next_seq: number } | undefined
      if (!group) return { ok: false, reason: 'no_group' }
      const oldest = message.receivedAt - this.#options.idempotencyWindowMs
      this.#db.prepare('DELETE FROM idempotency_keys WHERE group_id = ? AND accepted_at < ?').run(groupId, oldest)
      const keys = retryKeys(message, condition.retry)
      for (const key of keys) {
        const retry = this.#db.prepare('SELECT seq, epoch, message_type FROM idempotency_keys WHERE group_id = ? AND key = ?').get(groupId, key) as { seq: number; epoch: number; message_type: MessageType } | undefined
        if (retry) return { ok: true, seq: retry.seq, epoch: retry.epoch, messageType: retry.message_type, duplicate: true, recipients: [] }
      }
      const members = this.#members(groupId)
      if (condition.senderMustBeMember && !members.includes(message.senderId)) return { ok: false, reason: 'not_member' }
      if (condition.epoch && condition.epoch.expected !== group.epoch) return { ok: false, reason: 'stale_epoch', currentEpoch: group.epoch }
      const refs = effects.welcome?.refs
      if (refs) {
        const ref = changedRef(refs, this.#owners([...refs.keys()], Math.floor(message.receivedAt / 1000)))
        if (ref !== undefined) return { ok: false, reason: 'unknown_ref', ref }
      }
      const seq = group.next_seq
      const epoch = group.epoch + (condition.epoch?.advance ? 1 : 0)
      this.#db.prepare(`INSERT INTO messages (group_id, seq, sender_id, message_type, data, received_at, epoch, content_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(groupId, seq, message.senderId, message.messageType, buf(message.data), message.receivedAt, message.epoch, message.contentType)
      this.#db.prepare('UPDATE groups SET next_seq = ?, epoch = ? WHERE group_id = ?').run(seq + 1, epoch, groupId)
      const info = effects.groupInfo
      if (info) {
        this.#db.prepare('UPDATE groups SET group_info_epoch = ?, group_info = ?, ratchet_tree = ?, group_info_stored_at = ? WHERE group_id = ?')
          .run(info.epoch, buf(info.data), info.ratchetTree && buf(info.ratchetTree), info.storedAt, groupId)
      }
      const messageTo = members.filter((m) => m !== message.senderId)
      const welcomeTo = [...new Set(effects.welcome?.recipients ?? [])]
      const joining = effects.senderJoins ? [...welcomeTo, message.senderId] : welcomeTo
      for (const id of joining) this.#db.prepare('INSERT INTO group_members (group_id, client_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(groupId, id)
      fanOut(this.#db, this.#options.retention, groupId, seq, message, messageTo, welcomeTo, effects.welcome?.data)
      for (const key of keys) {
        this.#db.prepare('INSERT OR REPLACE INTO idempotency_keys (group_id, key, seq, epoch, message_type, accepted_at) VALUES (?, ?, ?, ?, ?, ?)')
          .run(groupId, key, seq, epoch, message.messageType, message.receivedAt)
      }
      const recipients = [...messageTo, ...welcomeTo.filter((r) => !messageTo.includes(r))]
      return { ok: true, seq, epoch, messageType: message.messageType, duplicate: false, recipients }
    })
  }

  async readMessages(groupId: string, after: number, limit: number, maxBytes = NO_BYTE_LIMIT): Promise<MessagePage | undefined> {
    return this.#db.transaction((): MessagePage | undefined => {
      const group = this.#db.prepare('SELECT next_seq, (SELECT min(seq) FROM messages m WHERE m.group_id = g.group_id) AS first_seq FROM groups g WHERE group_id = ?')
        .get(groupId) as { next_seq: number; first_seq: number | null } | undefined
      if (!group) return undefined
      const cursor = this.#db.prepare('SELECT * FROM messages WHERE group_id = ? AND seq > ? ORDER BY seq LIMIT ?').iterate(groupId, after, limit) as
        IterableIterator<{ seq: number; sender_id: string; message_type: MessageType; data: Buffer; received_at: number; epoch: number | null; content_type: ContentType | null }>
      const messages = withinBudget(cursor, dataSize, maxBytes).map((r) => ({ seq: r.seq, senderId: r.sender_id, messageType: r.message_type, data: new Uint8Array(r.data), receivedAt: r.received_at, epoch: r.epoch, contentType: r.content_type }))
      return { messages, firstSeq: group.first_seq ?? group.next_seq }
    })()
  }

  /**
   * The groups of the oldest messages of all groups (by messages_received), each dropping the
   * prefix of its log up to its first young message, until PURGE_BATCH are dropped. Deliveries
   * that share a dropped message's bytes go with it: they are past QUEUE_MAX_AGE (the caller's
   * rule), so their queue's retention drops them at its next look anyway, and tells the reader.
   */
  purgeGroupLogs(before: number): Promise<number> {
    return this.#tx(() => {
      const groups = this.#db.prepare(`SELECT DISTINCT group_id FROM (
        SELECT group_id FROM messages WHERE received_at < ? ORDER BY received_at LIMIT ${PURGE_BATCH})`).all(before) as { group_id: string }[]
      let dropped = 0
      for (const { group_id: groupId } of groups) {
        if (dropped >= PURGE_BATCH) break
        // Both along the primary key in seq order: the second stops at the first young message.
        const log = this.#db.prepare(`SELECT (SELECT seq FROM messages WHERE group_id = @g ORDER BY seq LIMIT 1) AS first,
          (SELECT seq FROM messages WHERE group_id = @g AND received_at >= @before ORDER BY seq LIMIT 1) AS young`).get({ g: groupId, before }) as { first: number | null; young: number | null }
        if (log.first === null) continue
        const through = Math.min((log.young ?? Infinity) - 1, log.first + PURGE_BATCH - dropped - 1)
        if (through < log.first) continue
        this.#db.prepare('DELETE FROM deliveries WHERE group_id = ? AND data IS NULL AND group_seq <= ?').run(groupId, through)
        dropped += this.#db.prepare('DELETE FROM messages WHERE group_id = ? AND seq <= ?').run(groupId, through).changes
      }
      return dropped
    })
  }

  async getGroupInfo(groupId: string): Promise<GroupInfoRecord | undefined> {
    const row = this.#db.prepare('SELECT group_info_epoch, group_info, ratchet_tree, group_info_stored_at FROM groups WHERE group_id = ? AND group_info IS NOT NULL').get(groupId) as
      { group_info_epoch: number; group_info: Buffer; ratchet_tree: Buffer | null; group_info_stored_at: number } | undefined
    return row && { epoch: row.group_info_epoch, data: new Uint8Array(row.group_info), ratchetTree: row.ratchet_tree && new Uint8Array(row.ratchet_tree), storedAt: row.group_info_stored_at }
  }

  readWelcomes(clientId: string, after: number, limit: number, now = Date.now(), maxBytes = NO_BYTE_LIMIT): Promise<WelcomeRecord[]> {
    return this.#tx(() => readWelcomes(this.#db, this.#options.retention, clientId, after, limit, now, maxBytes))
  }

  readDeliveries(clientId: string, after: number, limit: number, now: number, maxBytes = NO_BYTE_LIMIT): Promise<DeliveryPage> {
    return this.#tx(() => readDeliveries(this.#db, this.#options.retention, clientId, after, limit, now, maxBytes))
  }

  readDeliveryPages(reads: readonly QueueRead[], limit: number, now: number, maxBytes = NO_BYTE_LIMIT): Promise<DeliveryPage[]> {
    return this.#tx(() => {
      // One message's bytes once for all the streams it woke (MessageBytes).
      const messageBytes = new MessageBytes()
      return reads.map((r) => readDeliveries(this.#db, this.#options.retention, r.clientId, r.after, limit, now, maxBytes, messageBytes))
    })
  }

  ackDeliveries(clientId: string, upTo: number): Promise<AckResult> {
    return this.#tx(() => ackDeliveries(this.#db, clientId, upTo))
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close()
  }
}

function withoutPath({ path: _path, ...rest }: SqliteStoreOptions): Partial<StoreOptions> {
  return Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined))
}

function toKeyPackage(row: KeyPackageRow): KeyPackageRecord {
  return {
    ref: row.ref, data: new Uint8Array(row.data), ciphersuite: row.ciphersuite, lastResort: row.last_resort === 1,
    legacy: row.legacy === 1, notAfter: row.not_after, storedAt: row.stored_at,
  }
}
