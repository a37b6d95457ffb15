import type {
  AppendCondition,
  AppendResult,
  ClaimQuery,
  GroupRecord,
  KeyPackageRecord,
  NewGroup,
  NewMessage,
  RemoveMemberResult,
  Store,
  StoredMessage,
} from './store.js'

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
  /** messages[i] has seq firstSeq + i, so a read after N is an O(1) slice. */
  readonly messages: StoredMessage[]
  readonly firstSeq: number
}

/**
 * The embedded default. State lives in #private Maps keyed by user input (never plain
 * objects, so `__proto__` is just another id). Each method runs to completion without
 * awaiting, which makes every operation atomic in Node's single thread.
 */
export class MemoryStore implements Store {
  readonly kind = 'memory'
  readonly #keyPackages = new Map<string, KeyPackagePool>()
  readonly #groups = new Map<string, GroupState>()

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
    return countAvailable(pool, now)
  }

  async claimKeyPackage(clientId: string, query: ClaimQuery): Promise<KeyPackageRecord | undefined> {
    const pool = this.#keyPackages.get(clientId)
    if (!pool) return undefined
    let lastResort: KeyPackageRecord | undefined
    for (const [ref, record] of pool.packages) {
      if (isExpired(record, query.now)) {
        pool.packages.delete(ref)
        continue
      }
      if (query.ciphersuite !== undefined && record.ciphersuite !== query.ciphersuite) continue
      if (record.lastResort) {
        lastResort ??= record
        continue
      }
      pool.packages.delete(ref)
      this.#dropIfEmpty(clientId, pool)
      return record
    }
    if (lastResort) return lastResort
    const legacy = pool.legacy
    this.#dropIfEmpty(clientId, pool)
    if (legacy && query.ciphersuite === undefined) return legacy
    return undefined
  }

  async listKeyPackageClients(now: number): Promise<string[]> {
    const clients: string[] = []
    for (const [clientId, pool] of this.#keyPackages) {
      if (countAvailable(pool, now) > 0) clients.push(clientId)
    }
    return clients.sort()
  }

  async deleteKeyPackages(clientId: string): Promise<number> {
    const pool = this.#keyPackages.get(clientId)
    if (!pool) return 0
    this.#keyPackages.delete(clientId)
    return pool.packages.size + (pool.legacy ? 1 : 0)
  }

  async createGroup(group: NewGroup): Promise<GroupRecord | undefined> {
    if (this.#groups.has(group.groupId)) return undefined
    const state: GroupState = {
      groupId: group.groupId,
      creatorId: group.creatorId,
      createdAt: group.createdAt,
      members: new Set([group.creatorId]),
      messages: [],
      firstSeq: 1,
    }
    this.#groups.set(group.groupId, state)
    return toRecord(state)
  }

  async getGroup(groupId: string): Promise<GroupRecord | undefined> {
    const state = this.#groups.get(groupId)
    return state && toRecord(state)
  }

  async deleteGroup(groupId: string): Promise<boolean> {
    return this.#groups.delete(groupId)
  }

  async addMember(groupId: string, clientId: string): Promise<GroupRecord | undefined> {
    const state = this.#groups.get(groupId)
    if (!state) return undefined
    state.members.add(clientId)
    return toRecord(state)
  }

  async removeMember(groupId: string, clientId: string): Promise<RemoveMemberResult> {
    const state = this.#groups.get(groupId)
    if (!state) return 'no_group'
    return state.members.delete(clientId) ? 'removed' : 'not_member'
  }

  async appendMessage(groupId: string, message: NewMessage, condition: AppendCondition): Promise<AppendResult> {
    const state = this.#groups.get(groupId)
    if (!state) return { ok: false, reason: 'no_group' }
    if (condition.senderMustBeMember && !state.members.has(message.senderId)) return { ok: false, reason: 'not_member' }
    const seq = state.firstSeq + state.messages.length
    state.messages.push({ ...message, seq })
    return { ok: true, seq }
  }

  async readMessages(groupId: string, after: number, limit: number): Promise<StoredMessage[] | undefined> {
    const state = this.#groups.get(groupId)
    if (!state) return undefined
    const start = Math.max(0, after + 1 - state.firstSeq)
    return state.messages.slice(start, start + limit)
  }

  async close(): Promise<void> {
    this.#keyPackages.clear()
    this.#groups.clear()
  }

  #dropIfEmpty(clientId: string, pool: KeyPackagePool): void {
    if (pool.packages.size === 0 && !pool.legacy) this.#keyPackages.delete(clientId)
  }
}

function isExpired(record: KeyPackageRecord, now: number): boolean {
  return record.notAfter !== null && record.notAfter < now
}

function countAvailable(pool: KeyPackagePool, now: number): number {
  let count = pool.legacy ? 1 : 0
  for (const record of pool.packages.values()) if (!isExpired(record, now)) count++
  return count
}

function toRecord(state: GroupState): GroupRecord {
  return {
    groupId: state.groupId,
    creatorId: state.creatorId,
    createdAt: state.createdAt,
    members: [...state.members],
    nextSeq: state.firstSeq + state.messages.length,
  }
}
