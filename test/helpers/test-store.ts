import { after } from 'node:test'
import type { Config } from '../../src/config.js'
import { freshDatabase, startPostgres, type TestPostgres } from './postgres.js'

/**
 * TEST_STORE=postgres runs the same suites against PostgreSQL: one throwaway cluster per test
 * process, a fresh database for every app or service built. Memory otherwise.
 */
export const TEST_STORE = process.env.TEST_STORE ?? 'memory'

let cluster: Promise<TestPostgres> | undefined
const databases: TestPostgres[] = []
// Root-level: runs after every suite of the file, so after the apps have closed their pools.
after(async () => {
  for (const db of databases) await db.close().catch(() => {})
  await (await cluster)?.close()
})

/** The store settings for one app under test; a test that names its own store keeps it. */
export async function testStoreConfig(overrides: Partial<Config> = {}): Promise<Partial<Config>> {
  if (TEST_STORE !== 'postgres' || overrides.store !== undefined) return {}
  cluster ??= startPostgres()
  const db = await freshDatabase((await cluster).url)
  databases.push(db)
  return { store: 'postgres', databaseUrl: db.url }
}
