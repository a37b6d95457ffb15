import type { Logger } from 'pino'
import type { Config } from '../../src/config.js'
import { startService, type RunningService } from '../../src/runtime.js'
import { silentLogger, testConfig } from './app.js'
import { testStoreConfig } from './test-store.js'

/** Both doors on free ports of 127.0.0.1, as `npm start` runs them, over the TEST_STORE backend. */
export async function startTestService(overrides: Partial<Config> = {}, logger: Logger = silentLogger): Promise<RunningService> {
  return startService({ ...testConfig(), ...(await testStoreConfig(overrides)), ...overrides }, logger)
}
