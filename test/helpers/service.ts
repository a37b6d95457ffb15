import type { Config } from '../../src/config.js'
import { startService, type RunningService } from '../../src/runtime.js'
import { silentLogger, testConfig } from './app.js'

/** Both doors on free ports of 127.0.0.1, as `npm start` runs them. */
export function startTestService(overrides: Partial<Config> = {}): Promise<RunningService> {
  return startService({ ...testConfig(), ...overrides }, silentLogger)
}

