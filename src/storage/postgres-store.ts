import type pg from 'pg'
import { createPool, query, type DatabaseOptions } from './postgres/database.js'
import { AppendQueue } from './postgres/append.js'
import { postgresRateLimiter } from './postgres/rate-limiter.js'
import * as clients from './postgres/clients.js'
import * as groups from './postgres/groups.js'
import * as keyPackages from './postgres/key-packages.js'
import { migrate } from './postgres/migrations.js'
import { ackDeliveries, readDeliveryPages } from './postgres/queues.js'
import { readWelcomes } from './postgres/welcomes.js'
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from './options.js'
import { NO_BYTE_LIMIT } from './page-budget.js'
import type { IdPage } from './id-order.js'
import type { RateLimiter, RateLimitKind } from './rate-limiter.js'
import type { RateLimit } from '../config.js'
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

export interface PostgresStoreOptions extends DatabaseOptions, Partial<StoreOptions> {
  /** Where pool errors of idle connections go (they are retried on the next request). */
  readonly onError?: (err: Error) => void
}

/**
 * The store in PostgreSQL, shared by any number of instances. Every operation is one
 * statement or one transaction; the rules that memory keeps atomic by running to completion
 * are kept here by row locks (see append.ts and key-packages.ts).
 */
export class PostgresStore implements Store {
  readonly kind = 'postgres'
  readonly #pool: pg.Pool
  readonly #options: StoreOptions
  readonly #schema: string | undefined
  readonly #appends: AppendQueue

  private constructor(pool: pg.Pool, options: StoreOptions, schema: string | undefined) {
    this.#pool = pool
    this.#options = options
    this.#schema = schema
    this.#appends = new AppendQueue(pool, options)
  }

  /** Connects and applies the migrations (waiting for another instance that is applying them). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    if (options.schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(options.schema)) {
      throw new Error(`schema must be a lower-case SQL identifier, got ${JSON.stringify(options.schema)}`)
    }
    const pool = createPool(options, options.onError ?? (() => {}))
    try {
      await migrate(pool, options.schema)
    } catch (err) {
      await pool.end()
      throw err
    }
    const storeOptions = { retention: options.retention ?? DEFAULT_STORE_OPTIONS.retention, idempotencyWindowMs: options.idempotencyWindowMs ?? DEFAULT_STORE_OPTIONS.idempotencyWindowMs }
    return new PostgresStore(pool, storeOptions, options.schema)
  }

  get schema(): string | undefined {
    return this.#schema
  }

  async ping(): Promise<void> {
    await query(this.#pool, 'SELECT 1')
  }

  /** KEY_PACKAGE_CLAIM_LIMIT and MESSAGE_RATE_LIMIT counted in this database, shared by every instance on it. */
  rateLimiter(kind: RateLimitKind, limit: RateLimit): RateLimiter {
    return postgresRateLimiter(this.#pool, kind, limit)
  }

  addKeyPackages(clientId: string, records: readonly KeyPackageRecord[], now: number): Promise<number> {
    return keyPackages.addKeyPackages(this.#pool, clientId, records, now)
  }

  claimKeyPackage(clientId: string, q: ClaimQuery): Promise<KeyPackageRecord | undefined> {
    return keyPackages.claimKeyPackage(this.#pool, this.#options.retention, clientId, q)
  }

  listKeyPackageClients(now: number, page?: IdPage): Promise<string[]> {
    return keyPackages.listKeyPackageClients(this.#pool, now, page)
  }

  countKeyPackages(clientId: string, now: number): Promise<KeyPackageCount> {
    return keyPackages.countKeyPackages(this.#pool, clientId, now)
  }

  deleteKeyPackages(clientId: string): Promise<number> {
    return keyPackages.deleteKeyPackages(this.#pool, clientId)
  }

  deleteKeyPackage(clientId: string, ref: string): Promise<boolean> {
    return keyPackages.deleteKeyPackage(this.#pool, clientId, ref)
  }

  keyPackageOwners(refs: readonly string[], now?: number): Promise<Map<string, string>> {
    return keyPackages.keyPackageOwners(this.#pool, refs, now)
  }

  createGroup(group: NewGroup): Promise<GroupRecord | undefined> {
    return groups.createGroup(this.#pool, group)
  }

  getGroup(groupId: string): Promise<GroupRecord | undefined> {
    return groups.getGroup(this.#pool, groupId)
  }

  deleteGroup(groupId: string): Promise<boolean> {
    return groups.deleteGroup(this.#pool, groupId)
  }

  addMember(groupId: string, clientId: string): Promise<GroupRecord | undefined> {
    return groups.addMember(this.#pool, groupId, clientId)
  }

  removeMember(groupId: string, clientId: string): Promise<RemoveMemberResult> {
    return groups.removeMember(this.#pool, groupId, clientId)
  }

  listClientGroups(clientId: string, page?: IdPage): Promise<string[]> {
    return clients.listClientGroups(this.#pool, clientId, page)
  }

  deleteClient(clientId: string, now: number): Promise<ClientDeletion> {
    return clients.deleteClient(this.#pool, clientId, now)
  }

  appendMessage(groupId: string, message: NewMessage, condition: AppendCondition, effects: AppendEffects = {}): Promise<AppendResult> {
    return this.#appends.append(groupId, message, condition, effects)
  }

  readMessages(groupId: string, after: number, limit: number, maxBytes = NO_BYTE_LIMIT): Promise<MessagePage | undefined> {
    return groups.readMessages(this.#pool, groupId, after, limit, maxBytes)
  }

  purgeGroupLogs(before: number): Promise<number> {
    return groups.purgeGroupLogs(this.#pool, before)
  }

  getGroupInfo(groupId: string): Promise<GroupInfoRecord | undefined> {
    return groups.getGroupInfo(this.#pool, groupId)
  }

  readWelcomes(clientId: string, after: number, limit: number, now = Date.now(), maxBytes = NO_BYTE_LIMIT): Promise<WelcomeRecord[]> {
    return readWelcomes(this.#pool, this.#options.retention, clientId, after, limit, now, maxBytes)
  }

  async readDeliveries(clientId: string, after: number, limit: number, now: number, maxBytes = NO_BYTE_LIMIT): Promise<DeliveryPage> {
    return (await readDeliveryPages(this.#pool, this.#options.retention, [{ clientId, after }], limit, now, maxBytes))[0]!
  }

  readDeliveryPages(reads: readonly QueueRead[], limit: number, now: number, maxBytes = NO_BYTE_LIMIT): Promise<DeliveryPage[]> {
    return readDeliveryPages(this.#pool, this.#options.retention, reads, limit, now, maxBytes)
  }

  ackDeliveries(clientId: string, upTo: number): Promise<AckResult> {
    return ackDeliveries(this.#pool, clientId, upTo)
  }

  #closing: Promise<void> | undefined

  /** Waits for queries in flight, then closes every connection. */
  close(): Promise<void> {
    this.#closing ??= this.#pool.end()
    return this.#closing
  }
}
