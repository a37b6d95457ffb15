import type { Logger } from 'pino'
import type { Config, RateLimit } from '../config.js'
import { LocalDeliveryBus, type DeliveryBus } from '../service/delivery-bus.js'
import { processRateLimiter, type RateLimiter, type RateLimitKind } from './rate-limiter.js'
import { MemoryStore } from './memory-store.js'
import type { StoreOptions } from './options.js'
import { PostgresDeliveryBus } from './postgres/delivery-bus.js'
import { PostgresStore } from './postgres-store.js'
import type { Store } from './store.js'

export type { Store } from './store.js'
export type { RateLimiter } from './rate-limiter.js'

export type BackendConfig = Pick<Config, 'store' | 'databaseUrl' | 'databasePoolSize' | 'databaseStatementTimeoutSeconds' | 'sqlitePath' | 'queueMaxMessages' | 'queueMaxAgeSeconds' | 'idempotencyWindowSeconds'>

/** Where state lives, how live streams are woken and where rate limits count: they go together (one database, one bus). */
export interface Backend {
  readonly store: Store
  readonly bus: DeliveryBus
  /** Counts KEY_PACKAGE_CLAIM_LIMIT or MESSAGE_RATE_LIMIT where every instance on this state sees the same windows. */
  rateLimiter(kind: RateLimitKind, limit: RateLimit): RateLimiter
  /** Closes the bus, then the store (after requests in flight are done). */
  close(): Promise<void>
}

/** The one place where the store and the bus are chosen. */
export async function createBackend(config: BackendConfig, log: Pick<Logger, 'warn' | 'info'>): Promise<Backend> {
  const options: StoreOptions = {
    retention: { maxMessages: config.queueMaxMessages, maxAgeMs: config.queueMaxAgeSeconds * 1000 },
    idempotencyWindowMs: config.idempotencyWindowSeconds * 1000,
  }
  switch (config.store) {
    case 'memory':
      return local(new MemoryStore(options))
    case 'postgres': {
      const onError = (err: Error) => log.warn({ err }, 'A database connection failed; it is replaced on the next request')
      const store = await PostgresStore.open({ connectionString: config.databaseUrl, poolSize: config.databasePoolSize, statementTimeoutMs: config.databaseStatementTimeoutSeconds * 1000, onError, ...options })
      let bus: PostgresDeliveryBus
      try {
        bus = await PostgresDeliveryBus.open({ connectionString: config.databaseUrl, log })
      } catch (err) {
        await store.close()
        throw err
      }
      return { store, bus, rateLimiter: (kind, limit) => store.rateLimiter(kind, limit), close: async () => {
        await bus.close()
        await store.close()
      } }
    }
    case 'sqlite': {
      // Loaded only when chosen: a native module that memory and postgres users never need.
      const { SqliteStore } = await import('./sqlite-store.js')
      return local(SqliteStore.open({ path: config.sqlitePath, ...options }))
    }
  }
}

/** One process owns the state (a SQLite file is for one instance): the in-process bus and counts are enough. */
function local(store: Store): Backend {
  return { store, bus: new LocalDeliveryBus(), rateLimiter: processRateLimiter, close: () => store.close() }
}
