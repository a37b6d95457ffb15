import assert from 'node:assert/strict'
import { after, before } from 'node:test'
import type { Logger } from 'pino'
import type { Config } from '../../src/config.js'
import { startService, type RunningService } from '../../src/runtime.js'
import { silentLogger, testConfig } from './app.js'
import { RestApi } from './rest-api.js'
import { testStoreConfig } from './test-store.js'

/** Both doors on free ports of 127.0.0.1, as `npm start` runs them, over the TEST_STORE backend. */
export async function startTestService(overrides: Partial<Config> = {}, logger: Logger = silentLogger): Promise<RunningService> {
  return startService({ ...testConfig(), ...(await testStoreConfig(overrides)), ...overrides }, logger)
}

/** The service of one suite, and a REST client of it. */
export interface SuiteService {
  readonly running: RunningService
  readonly api: RestApi
}

/**
 * Starts the service (startTestService) before the tests of the suite it is called in and
 * closes it after them. Its fields are there once the suite runs: read them inside tests.
 */
export function useTestService(overrides: Partial<Config> = {}): SuiteService {
  let current: SuiteService | undefined
  before(async () => {
    const running = await startTestService(overrides)
    current = { running, api: new RestApi(running.httpPort) }
  })
  after(() => current?.running.close())
  const started = (): SuiteService => current ?? assert.fail('the suite\'s service starts before its tests: read it inside a test')
  return {
    get running() {
      return started().running
    },
    get api() {
      return started().api
    },
  }
}
