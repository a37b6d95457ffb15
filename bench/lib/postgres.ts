/**
 * The bench's own throwaway PostgreSQL, shared by the PostgreSQL scenarios of one run: started
 * on first use (a run without them never starts it), one fresh database per scenario, and
 * stopped at the end of the run. It is the tests' cluster (test/helpers/postgres.ts): initdb
 * into a temporary folder with fsync off, or a fresh database on DATABASE_URL when set.
 */
import { freshDatabase, startPostgres, type TestPostgres } from '../../test/helpers/postgres.js'

export interface Database {
  readonly url: string
  /** Drops the database. */
  close(): Promise<void>
}

export class BenchPostgres {
  #server: Promise<TestPostgres> | undefined
  readonly #log: (message: string) => void

  constructor(log: (message: string) => void) {
    this.#log = log
  }

  /** A new, empty database; the server is started by the first call. */
  async database(): Promise<Database> {
    this.#server ??= this.#start()
    return freshDatabase((await this.#server).url)
  }

  /** Stops the cluster (or drops the database made on DATABASE_URL); nothing when never started. */
  async close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    await (await server?.catch(() => undefined))?.close()
  }

  async #start(): Promise<TestPostgres> {
    const t = performance.now()
    const server = await startPostgres()
    this.#log(`    PostgreSQL for the bench ${process.env.DATABASE_URL ? 'on DATABASE_URL' : 'started (throwaway cluster, fsync off)'} in ${((performance.now() - t) / 1000).toFixed(1)} s`)
    return server
  }
}
