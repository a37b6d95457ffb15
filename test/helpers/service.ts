import { after } from 'node:test'
import type { Config } from '../../src/config.js'
import { startService, type RunningService } from '../../src/runtime.js'
import { silentLogger, testConfig } from './app.js'
import { freshDatabase, startPostgres, type TestPostgres } from './postgres.js'

/**
 * TEST_STORE=postgres runs the same suites against PostgreSQL: one throwaway cluster per test
 * process, a fresh database for every service started.
 */
const TEST_STORE = process.env.TEST_STORE ?? 'memory'
let cluster: Promise<TestPostgres> | undefined
const databases: TestPostgres[] = []
after(async () => {
  for (const db of databases) await db.close().catch(() => {})
  await (await cluster)?.close()
})

/** Both doors on free ports of 127.0.0.1, as `npm start` runs them. */
export async function startTestService(overrides: Partial<Config> = {}): Promise<RunningService> {
  if (TEST_STORE === 'postgres' && overrides.store === undefined) {
    cluster ??= startPostgres()
    const db = await freshDatabase((await cluster).url)
    databases.push(db)
    return startService({ ...testConfig(), store: 'postgres', databaseUrl: db.url, ...overrides }, silentLogger)
  }
  return startService({ ...testConfig(), ...overrides }, silentLogger)
}
