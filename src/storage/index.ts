import type { Config } from '../config.js'
import { MemoryStore } from './memory-store.js'
import type { Store } from './store.js'

export type { Store } from './store.js'

/** The one place where the store is chosen. */
export function createStore(config: Pick<Config, 'store'>): Store {
  switch (config.store) {
    case 'memory':
      return new MemoryStore()
  }
}
