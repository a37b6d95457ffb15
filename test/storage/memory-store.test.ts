import { MemoryStore } from '../../src/storage/memory-store.js'
import { storeContract } from './store-contract.js'

storeContract(async (options) => new MemoryStore(options))
