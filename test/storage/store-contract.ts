import { clientContract } from './contract/clients.js'
import { concurrencyContract } from './contract/concurrency.js'
import type { StoreFactory } from './contract/fixtures.js'
import { groupContract } from './contract/groups.js'
import { keyPackageContract } from './contract/key-packages.js'
import { logRetentionContract } from './contract/log-retention.js'
import { queueContract } from './contract/queues.js'

export type { StoreFactory } from './contract/fixtures.js'

/**
 * The one contract every store passes (as aedes-persistence's abstract.js): each operation,
 * its errors, and its atomicity under concurrency. A backend's test file calls this with a
 * factory that builds a fresh, empty store; backend-specific tests live in their own files.
 */
export function storeContract(factory: StoreFactory): void {
  keyPackageContract(factory)
  groupContract(factory)
  queueContract(factory)
  clientContract(factory)
  logRetentionContract(factory)
  concurrencyContract(factory)
}
