import type { LoadClient } from '../lib/load-client.js'
import type { Settings } from '../lib/options.js'
import type { BenchPostgres, Database } from '../lib/postgres.js'
import { PG_SUFFIX } from '../lib/report.js'
import type { BenchStore, ScenarioResult } from '../lib/result.js'
import { startService, type ServiceProc } from '../lib/procs.js'

export type { BenchStore } from '../lib/result.js'

export interface Context {
  readonly settings: Settings
  readonly load: LoadClient
  readonly log: (message: string) => void
  /** Distinct KeyPackages (base64), made on first use. */
  readonly keyPackages: () => Promise<readonly string[]>
  /** Where --cpu-prof writes the service's profiles, when profiling. */
  readonly profileDir: string | undefined
  /** The run's PostgreSQL, started by the first scenario that asks for a database. */
  readonly postgres: BenchPostgres
}

export interface Scenario {
  readonly key: string
  readonly title: string
  /** The service's store (memory when not said). */
  readonly store?: BenchStore
  run(ctx: Context): Promise<ScenarioResult>
}

/** The same scenario on PostgreSQL: its key gets `-pg`, its title says so. */
export function onStore(store: BenchStore, key: string, title: string): { key: string; title: string; store: BenchStore } {
  return store === 'memory' ? { key, title, store } : { key: `${key}${PG_SUFFIX}`, title: `${title}; service on PostgreSQL`, store }
}

/** What a reader of a PostgreSQL figure must know about the database behind it. */
export const POSTGRES_NOTE = 'service on PostgreSQL (STORE=postgres): a throwaway local cluster on the same machine, fsync off (commits reach the OS, not the disk), DATABASE_POOL_SIZE 10'

export interface ServiceSetup {
  readonly store?: BenchStore
  readonly nodeArgs?: readonly string[]
  /** More settings of the service (e.g. AUTH=jwt). */
  readonly env?: Readonly<Record<string, string>>
}

/** A fresh service process for one scenario (on PostgreSQL: with a fresh database), stopped afterwards whatever happens. */
export async function withService<T>(ctx: Context, body: (service: ServiceProc) => Promise<T>, setup: ServiceSetup = {}): Promise<T> {
  return withServices(ctx, 1, ([service]) => body(service!), setup)
}

/** `count` fresh service processes sharing one store: on PostgreSQL one fresh database for all of them. */
export async function withServices<T>(ctx: Context, count: number, body: (services: ServiceProc[]) => Promise<T>, setup: ServiceSetup = {}): Promise<T> {
  let database: Database | undefined
  const services: ServiceProc[] = []
  try {
    if (setup.store === 'postgres') database = await ctx.postgres.database()
    if (count > 1 && !database) throw new Error('several instances share state only on PostgreSQL')
    // The pool size is pinned (it is the default) so a shell's DATABASE_POOL_SIZE cannot move the figures.
    const env = { ...setup.env, ...(database ? { STORE: 'postgres', DATABASE_URL: database.url, DATABASE_POOL_SIZE: '10' } : {}) }
    // One after the other: each applies (or waits for) the migrations before it answers /health.
    for (let i = 0; i < count; i++) services.push(await startService({ profileDir: ctx.profileDir, nodeArgs: setup.nodeArgs, env }))
    return await body(services)
  } finally {
    for (const service of services) await service.stop()
    await database?.close()
  }
}

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
export const mb = (bytes: number) => bytes / (1024 * 1024)
