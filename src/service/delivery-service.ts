import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import { ServiceError } from '../errors.js'
import type { GroupRecord, KeyPackageRecord, MessageType, Store, StoredMessage } from '../storage/store.js'
import { assertId } from './ids.js'

export const DEFAULT_READ_LIMIT = 100
export const MAX_READ_LIMIT = 1000

export interface ServiceOptions {
  readonly store: Store
  readonly log: Pick<Logger, 'info' | 'debug' | 'warn'>
  /** Injected for tests; unix milliseconds. */
  readonly now?: () => number
}

export interface StoreKeyPackagesResult {
  readonly clientId: string
  readonly stored: number
  readonly available: number
}

export interface RelayRequest {
  readonly groupId: string
  readonly senderId: string
  readonly message: Uint8Array
  readonly messageType: MessageType
}

export interface RelayResult {
  readonly groupId: string
  readonly seq: number
}

/**
 * The delivery rules, shared by the REST and the TCP door. It imports neither fastify nor
 * net: doors validate the shape of a request, call one method, and map the result or the
 * ServiceError it throws.
 */
export class DeliveryService {
  readonly #store: Store
  readonly #log: ServiceOptions['log']
  readonly #now: () => number

  constructor(options: ServiceOptions) {
    this.#store = options.store
    this.#log = options.log
    this.#now = options.now ?? Date.now
  }

  get storeKind(): string {
    return this.#store.kind
  }

  async storeKeyPackages(clientId: string, packages: readonly Uint8Array[]): Promise<StoreKeyPackagesResult> {
    assertId('client_id', clientId)
    if (packages.length === 0) throw new ServiceError('bad_request', 'key_packages must hold at least one KeyPackage')
    if (packages.some((p) => p.length === 0)) throw new ServiceError('bad_request', 'a KeyPackage must not be empty')
    const storedAt = this.#now()
    const records = packages.map((data) => opaqueKeyPackage(data, storedAt))
    const available = await this.#store.addKeyPackages(clientId, records, this.#seconds())
    this.#log.info(`Stored KeyPackage for client: ${clientId}`)
    return { clientId, stored: records.length, available }
  }

  /** One KeyPackage of the client, or undefined when it has none. */
  async fetchKeyPackage(clientId: string): Promise<KeyPackageRecord | undefined> {
    assertId('client_id', clientId)
    const record = await this.#store.claimKeyPackage(clientId, { now: this.#seconds() })
    this.#log.debug({ clientId, found: record !== undefined }, 'Fetched KeyPackage')
    return record
  }

  listKeyPackageClients(): Promise<string[]> {
    return this.#store.listKeyPackageClients(this.#seconds())
  }

  async deleteKeyPackages(clientId: string): Promise<number> {
    assertId('client_id', clientId)
    return this.#store.deleteKeyPackages(clientId)
  }

  async createGroup(groupId: string, creatorId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    assertId('creator_id', creatorId)
    const group = await this.#store.createGroup({ groupId, creatorId, createdAt: this.#now() })
    if (!group) throw new ServiceError('group_exists', `Group already exists: ${groupId}`)
    this.#log.info(`Created group: ${groupId} by ${creatorId}`)
    return group
  }

  async getGroup(groupId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    return orNotFound(await this.#store.getGroup(groupId), groupId)
  }

  async deleteGroup(groupId: string): Promise<void> {
    assertId('group_id', groupId)
    if (!(await this.#store.deleteGroup(groupId))) throw groupNotFound(groupId)
    this.#log.info(`Deleted group: ${groupId}`)
  }

  async joinGroup(groupId: string, clientId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    assertId('client_id', clientId)
    const group = orNotFound(await this.#store.addMember(groupId, clientId), groupId)
    this.#log.info(`Client ${clientId} joined group ${groupId}`)
    return group
  }

  async leaveGroup(groupId: string, clientId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    assertId('client_id', clientId)
    const result = await this.#store.removeMember(groupId, clientId)
    if (result === 'no_group') throw groupNotFound(groupId)
    if (result === 'not_member') throw new ServiceError('member_not_found', `Client not in group: ${clientId}`)
    this.#log.info(`Client ${clientId} left group ${groupId}`)
    return orNotFound(await this.#store.getGroup(groupId), groupId)
  }

  async relayMessage(request: RelayRequest): Promise<RelayResult> {
    const { groupId, senderId, message, messageType } = request
    assertId('group_id', groupId)
    assertId('sender_id', senderId)
    if (message.length === 0) throw new ServiceError('bad_request', 'message must not be empty')
    const result = await this.#store.appendMessage(
      groupId,
      { senderId, messageType, data: message, receivedAt: this.#now() },
      { senderMustBeMember: true },
    )
    if (!result.ok) {
      if (result.reason === 'no_group') throw groupNotFound(groupId)
      throw new ServiceError('not_member', `Sender not in group: ${senderId}`)
    }
    this.#log.info(`Relayed message from ${senderId} to group ${groupId}`)
    return { groupId, seq: result.seq }
  }

  async readMessages(groupId: string, after = 0, limit = DEFAULT_READ_LIMIT): Promise<StoredMessage[]> {
    assertId('group_id', groupId)
    if (!Number.isSafeInteger(after) || after < 0) throw new ServiceError('bad_request', 'after must be a whole number >= 0')
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_READ_LIMIT) {
      throw new ServiceError('bad_request', `limit must be a whole number from 1 to ${MAX_READ_LIMIT}`)
    }
    return orNotFound(await this.#store.readMessages(groupId, after, limit), groupId)
  }

  #seconds(): number {
    return Math.floor(this.#now() / 1000)
  }
}

function opaqueKeyPackage(data: Uint8Array, storedAt: number): KeyPackageRecord {
  const ref = createHash('sha256').update(data).digest('hex')
  return { ref, data, ciphersuite: null, lastResort: false, legacy: true, notAfter: null, storedAt }
}

function groupNotFound(groupId: string): ServiceError {
  return new ServiceError('group_not_found', `Group not found: ${groupId}`)
}

function orNotFound<T>(value: T | undefined, groupId: string): T {
  if (value === undefined) throw groupNotFound(groupId)
  return value
}
