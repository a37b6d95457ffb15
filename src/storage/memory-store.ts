import { ClientQueue } from './client-queue.js'
import { HandedOutRefs, handedOutUntil, nowSeconds } from './handed-out-refs.js'
import { pageOfIds, type IdPage } from './id-order.js'
import { MessageLog } from './message-log.js'
import { digestFor, RetryIndex } from './retry-index.js'
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from './options.js'
import type {
  AckResult,
  AppendCondition,
  AppendEffects,
  AppendResult,
  ClaimQuery,
  ClientDeletion,
  DeliveryPage,
  GroupInfoRecord,
  GroupRecord,
  KeyPackageCount,
  KeyPackageRecord,
  MessagePage,
  NewGroup,
  NewMessage,
  RemoveMemberResult,
  QueueRead,
  Store,
  WelcomeRecord,
} from './store.js'
import { changedRef } from './store.js'
import { dataSize, NO_BYTE_LIMIT, withinBudget } from './page-budget.js'
import { WelcomeInbox } from './welcome-inbox.js'

interface KeyPackagePool {
  /** Consumable and last-resort packages by ref, in upload order. */
  readonly packages: Map<string, KeyPackageRecord>
  legacy: KeyPackageRecord | undefined
}

interface GroupState {
  readonly groupId: string
  readonly creatorId: string
  readonly createdAt: number
  readonly members: Set<string>
  epoch: number
  groupInfo: GroupInfoRecord | undefined
  /** Finds retries among the accepted messages; their time, type and the epoch they left the group at are in the log. */
  readonly retries: RetryIndex
  /** The accepted messages: seq N is at index N - 1, so a read after N is a slice from N. */
  readonly messages: MessageLog
}

/** Messages purgeGroupLogs drops per call, at most. */
const PURGE_BATCH = 10_000

export type MemoryStoreOptions = StoreOptions
export { DEFAULT_STORE_OPTIONS } from './options.js'

/**
 * The embedded default. State lives in #private Maps keyed by user input (never plain
 * objects, so `__proto__` is just another id). Each method runs to completion without
 * awaiting, which makes every operation atomic in Node's single thread.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly #options: MemoryStoreOptions
  readonly #queues = new Map<string, ClientQueue>()
  readonly #keyPackages = new Map<string, KeyPackagePool>()
  /** KeyPackageRef → the client it was handed out for, until the package expires. */
  readonly #handedOut = new HandedOutRefs()
  readonly #groups = new Map<string, GroupState>()
  /** Client → the groups it is a member of: the other side of every GroupState's members. */
  readonly #memberOf = new Map<string, Set<string>>()
  readonly #welcomes = new Map<string, WelcomeInbox>()

  constructor(options: MemoryStoreOptions = DEFAULT_STORE_OPTIONS) {
    this.#options = options
  }

  async ping(): Promise<void> {}

  async addKeyPackages(clientId: string, records: readonly KeyPackageRecord[], now: number): Promise<number> {
    let pool = this.#keyPackages.get(clientId)
    if (!pool) {
      pool = { packages: new Map(), legacy: undefined }
      this.#keyPackages.set(clientId, pool)
    }
    for (const record of records) {
      if (record.legacy) pool.legacy = record
      else pool.packages.set(record.ref, record)
    }
    return this.#count(pool, now).total
  }

  async claimKeyPackage(clientId: string, query: ClaimQuery): Promise<KeyPackageRecord | undefined> {
    const pool = this.#keyPackages.get(clientId)
    if (!pool) return undefined
    let claimed: KeyPackageRecord | undefined
    let lastResort: KeyPackageRecord | undefined
    for (const [ref, record] of pool.packages) {
      if (isExpired(record, query.now)) {
        pool.packages.delete(ref)
        continue
      }
      if (query.ciphersuite !== undefined && record.ciphersuite !== query.ciphersuite) continue
      if (record.lastResort) {
        lastResort ??= record
        // Only the first last-resort one can go out: with keptOnly there is nothing more to find.
        if (query.keptOnly) break
        continue
      }
      if (query.keptOnly) continue
      pool.packages.delete(ref)
      claimed = record
      break
    }
    claimed ??= lastResort ?? (query.ciphersuite === undefined ? pool.legacy : undefined)
    if (pool.packages.size === 0 && !pool.legacy) this.#keyPackages.delete(clientId)
    if (claimed && !claimed.legacy) this.#handedOut.remember(claimed.ref, clientId, handedOutUntil(claimed, query.now, this.#options.retention), query.now)
    return claimed
  }

  async listKeyPackageClients(now: number, page: IdPage = {}): Promise<string[]> {
    // Whether a client has one is known at its first package that has not expired, and is asked
    // only of ids that would make the page: one look per client at most, not one per KeyPackage
    // stored (anyone may ask for the list).
    return pageOfIds(this.#keyPackages.keys(), page, (clientId) => {
      const pool = this.#keyPackages.get(clientId)!
      return pool.legacy !== undefined || someValid(pool.packages.values(), now)
    })
  }

  async countKeyPackages(clientId: string, now: number): Promise<KeyPackageCount> {
    const pool = this.#keyPackages.get(clientId)
    return pool ? this.#count(pool, now) : { total: 0, byCiphersuite: new Map(), lastResort: 0, legacy: 0 }
  }

  async deleteKeyPackages(clientId: string): Promise<number> {
    const pool = this.#keyPackages.get(clientId)
    if (!pool) return 0
    this.#keyPackages.delete(clientId)
    return pool.packages.size + (pool.legacy ? 1 : 0)
  }

  async deleteKeyPackage(clientId: string, ref: string): Promise<boolean> {
    const pool = this.#keyPackages.get(clientId)
    if (!pool) return false
    let deleted = pool.packages.delete(ref)
    if (!deleted && pool.legacy?.ref === ref) {
      pool.legacy = undefined
      deleted = true
    }
    if (pool.packages.size === 0 && !pool.legacy) this.#keyPackages.delete(clientId)
    return deleted
  }

  async keyPackageOwners(refs: readonly string[], now = nowSeconds()): Promise<Map<string, string>> {
    return this.#handedOut.owners(refs, now)
  }

  async createGroup(group: NewGroup): Promise<GroupRecord | undefined> {
    if (this.#groups.has(group.groupId)) return undefined
    const state: GroupState = {
      groupId: group.groupId,
      creatorId: group.creatorId,
      createdAt: group.createdAt,
      members: new Set(),
      epoch: group.epoch,
      groupInfo: undefined,
      retries: new RetryIndex(),
      messages: new MessageLog(),
    }
    this.#groups.set(group.groupId, state)
    this.#join(state, group.creatorId)
    return toRecord(state)
  }

  async getGroup(groupId: string): Promise<GroupRecord | undefined> {
    const state = this.#groups.get(groupId)
    return state && toRecord(state)
  }

  async deleteGroup(groupId: string): Promise<boolean> {
    const state = this.#groups.get(groupId)
    if (!state) return false
    for (const member of [...state.members]) this.#leave(state, member)
    return this.#groups.delete(groupId)
  }

  async addMember(groupId: string, clientId: string): Promise<GroupRecord | undefined> {
    const state = this.#groups.get(groupId)
    if (!state) return undefined
    this.#join(state, clientId)
    return toRecord(state)
  }

  async removeMember(groupId: string, clientId: string): Promise<RemoveMemberResult> {
    const state = this.#groups.get(groupId)
    if (!state) return 'no_group'
    return this.#leave(state, clientId) ? 'removed' : 'not_member'
  }

  async listClientGroups(clientId: string, page: IdPage = {}): Promise<string[]> {
    const groups = this.#memberOf.get(clientId)
    return groups ? pageOfIds(groups, page) : []
  }

  async deleteClient(clientId: string, now: number): Promise<ClientDeletion> {
    // No await in here: the whole delete is one step of Node's single thread.
    const groups = [...(this.#memberOf.get(clientId) ?? [])]
    for (const groupId of groups) this.#leave(this.#groups.get(groupId)!, clientId)
    const pool = this.#keyPackages.get(clientId)
    const keyPackages = pool ? this.#count(pool, now).total : 0
    this.#keyPackages.delete(clientId)
    this.#handedOut.forget(clientId)
    const queue = this.#queues.get(clientId)
    const deliveries = queue?.size ?? 0
    queue?.ack(queue.lastSeq)
    const inbox = this.#welcomes.get(clientId)
    const welcomes = inbox?.size ?? 0
    inbox?.clear()
    return { groups: groups.length, keyPackages, deliveries, welcomes }
  }

  /** Adds the member on both sides (its group's members, its own groups); idempotent. */
  #join(state: GroupState, clientId: string): void {
    state.members.add(clientId)
    let groups = this.#memberOf.get(clientId)
    if (!groups) this.#memberOf.set(clientId, (groups = new Set()))
    groups.add(state.groupId)
  }

  /** Removes the member on both sides; false when it was not one. */
  #leave(state: GroupState, clientId: string): boolean {
    if (!state.members.delete(clientId)) return false
    const groups = this.#memberOf.get(clientId)!
    groups.delete(state.groupId)
    if (groups.size === 0) this.#memberOf.delete(clientId)
    return true
  }

  async appendMessage(groupId: string, message: NewMessage, condition: AppendCondition, effects: AppendEffects = {}): Promise<AppendResult> {
    const state = this.#groups.get(groupId)
    if (!state) return { ok: false, reason: 'no_group' }
    const digest = digestFor(message.data, condition.retry)
    const retry = state.retries.find(state.messages, message.senderId, message.data, digest, condition.retry, message.receivedAt - this.#options.idempotencyWindowMs)
    if (retry !== undefined) {
      return { ok: true, seq: retry, epoch: state.messages.epochAfter(retry - 1), messageType: state.messages.messageType(retry - 1), duplicate: true, recipients: [] }
    }
    if (condition.senderMustBeMember && !state.members.has(message.senderId)) return { ok: false, reason: 'not_member' }
    if (condition.epoch && condition.epoch.expected !== state.epoch) {
      return { ok: false, reason: 'stale_epoch', currentEpoch: state.epoch }
    }
    const refs = effects.welcome?.refs
    if (refs) {
      const ref = changedRef(refs, this.#handedOut.owners([...refs.keys()], Math.floor(message.receivedAt / 1000)))
      if (ref !== undefined) return { ok: false, reason: 'unknown_ref', ref }
    }
    if (condition.epoch?.advance) state.epoch += 1
    const seq = state.messages.append(message, state.epoch)
    state.retries.add(seq, digest, condition.retry)
    const { senderId, messageType, receivedAt, epoch, contentType } = message
    if (effects.groupInfo) state.groupInfo = effects.groupInfo

    // Every member at the moment of acceptance gets it, except its sender; Welcome recipients
    // join after it and get the Welcome instead. All its deliveries share one view of the stored
    // bytes (delivery frames are cached per view), made only when someone gets it.
    const recipients: string[] = []
    let data: Uint8Array | undefined
    for (const member of state.members) {
      if (member === message.senderId) continue
      data ??= state.messages.data(seq - 1)
      this.#queue(member).push({ groupId, groupSeq: seq, senderId, kind: 'message', messageType, epoch, contentType, data, receivedAt }, this.#options.retention)
      recipients.push(member)
    }
    if (effects.welcome) {
      // A relayed Welcome is the message itself: keep the stored copy, never the caller's bytes.
      const welcome = effects.welcome.data === message.data ? (data ??= state.messages.data(seq - 1)) : effects.welcome.data
      for (const recipient of effects.welcome.recipients) {
        this.#join(state, recipient)
        let inbox = this.#welcomes.get(recipient)
        if (!inbox) this.#welcomes.set(recipient, (inbox = new WelcomeInbox()))
        inbox.push(groupId, senderId, welcome, receivedAt, this.#options.retention)
        this.#queue(recipient).push({ groupId, groupSeq: seq, senderId, kind: 'welcome', messageType: 'Welcome', epoch: null, contentType: 'welcome', data: welcome, receivedAt }, this.#options.retention)
        if (!recipients.includes(recipient)) recipients.push(recipient)
      }
    }
    if (effects.senderJoins) this.#join(state, senderId)
    return { ok: true, seq, epoch: state.epoch, messageType, duplicate: false, recipients }
  }

  async readDeliveries(clientId: string, after: number, limit: number, now: number, maxBytes = NO_BYTE_LIMIT): Promise<DeliveryPage> {
    const queue = this.#queues.get(clientId)
    if (!queue) return { deliveries: [], lastSeq: 0 }
    const page = queue.read(after, limit, this.#options.retention, now)
    return { ...page, deliveries: withinBudget(page.deliveries, dataSize, maxBytes) }
  }

  async readDeliveryPages(reads: readonly QueueRead[], limit: number, now: number, maxBytes?: number): Promise<DeliveryPage[]> {
    return Promise.all(reads.map((r) => this.readDeliveries(r.clientId, r.after, limit, now, maxBytes)))
  }

  async ackDeliveries(clientId: string, upTo: number): Promise<AckResult> {
    const queue = this.#queues.get(clientId)
    if (!queue) return upTo === 0 ? { ok: true, ackedUpTo: 0, remaining: 0 } : { ok: false, lastSeq: 0 }
    if (!queue.ack(upTo)) return { ok: false, lastSeq: queue.lastSeq }
    return { ok: true, ackedUpTo: queue.ackedUpTo, remaining: queue.size }
  }

  #queue(clientId: string): ClientQueue {
    let queue = this.#queues.get(clientId)
    if (!queue) this.#queues.set(clientId, (queue = new ClientQueue()))
    return queue
  }

  async readMessages(groupId: string, after: number, limit: number, maxBytes = NO_BYTE_LIMIT): Promise<MessagePage | undefined> {
    const state = this.#groups.get(groupId)
    if (!state) return undefined
    const start = Math.max(state.messages.firstSeq - 1, after)
    return { messages: withinBudget(state.messages.slice(start, start + limit), dataSize, maxBytes), firstSeq: state.messages.firstSeq }
  }

  /**
   * Groups in turn, each dropping a prefix up to its first young message, until PURGE_BATCH are
   * dropped: a batch blocks the event loop for a bounded time, and the next call goes on.
   */
  async purgeGroupLogs(before: number): Promise<number> {
    let dropped = 0
    for (const state of this.#groups.values()) {
      const n = state.messages.dropReceivedBefore(before, PURGE_BATCH - dropped)
      if (n === 0) continue
      state.retries.forgetBefore(state.messages.firstSeq)
      dropped += n
      if (dropped >= PURGE_BATCH) break
    }
    return dropped
  }

  async getGroupInfo(groupId: string): Promise<GroupInfoRecord | undefined> {
    return this.#groups.get(groupId)?.groupInfo
  }

  async readWelcomes(clientId: string, after: number, limit: number, now = Date.now(), maxBytes = NO_BYTE_LIMIT): Promise<WelcomeRecord[]> {
    return withinBudget(this.#welcomes.get(clientId)?.read(after, limit, this.#options.retention, now) ?? [], dataSize, maxBytes)
  }

  async close(): Promise<void> {
    this.#keyPackages.clear()
    this.#handedOut.clear()
    this.#groups.clear()
    this.#memberOf.clear()
    this.#welcomes.clear()
    this.#queues.clear()
  }

  #count(pool: KeyPackagePool, now: number): KeyPackageCount {
    const byCiphersuite = new Map<number, number>()
    let total = pool.legacy ? 1 : 0
    let lastResort = 0
    for (const record of pool.packages.values()) {
      if (isExpired(record, now)) continue
      total++
      if (record.lastResort) lastResort++
      if (record.ciphersuite !== null) byCiphersuite.set(record.ciphersuite, (byCiphersuite.get(record.ciphersuite) ?? 0) + 1)
    }
    return { total, byCiphersuite, lastResort, legacy: pool.legacy ? 1 : 0 }
  }
}

function someValid(records: Iterable<KeyPackageRecord>, now: number): boolean {
  for (const record of records) if (!isExpired(record, now)) return true
  return false
}

function isExpired(record: KeyPackageRecord, now: number): boolean {
  return record.notAfter !== null && record.notAfter < now
}

function toRecord(state: GroupState): GroupRecord {
  return {
    groupId: state.groupId,
    creatorId: state.creatorId,
    createdAt: state.createdAt,
    epoch: state.epoch,
    groupInfoEpoch: state.groupInfo?.epoch ?? null,
    members: [...state.members],
    nextSeq: state.messages.length + 1,
  }
}
