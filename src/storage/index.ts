import type { Config } from '../config.js'
import { MemoryStore } from './memory-store.js'
import type { Store } from './store.js'

export type { Store } from './store.js'

/** The one place where the store is chosen. */
export function createStore(config: Pick<Config, 'store' | 'queueMaxMessages' | 'queueMaxAgeSeconds' | 'idempotencyWindowSeconds'>): Store {
  switch (config.store) {
    case 'memory':
      return new MemoryStore({
        retention: { maxMessages: config.queueMaxMessages, maxAgeMs: config.queueMaxAgeSeconds * 1000 },
        idempotencyWindowMs: config.idempotencyWindowSeconds * 1000,
      })
  }
}
