/**
 * A throwaway PostgreSQL for tests: a fresh cluster from the installed server binaries
 * (initdb into a temporary folder, as the unprivileged `postgres` user when we are root, on a
 * free port), removed afterwards, even when a test fails. With DATABASE_URL set, a fresh
 * database on that server instead, dropped afterwards.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'

export const POSTGRES_BIN = process.env.POSTGRES_BIN ?? '/usr/lib/postgresql/15/bin'

export interface TestPostgres {
  /** A connection string for a database of its own. */
  readonly url: string
  /** Only for a cluster of our own: stop and start it again (outage tests). */
  readonly cluster: { stop(): void; start(): void; freeze(): void; thaw(): void } | undefined
  /** Stops the cluster and removes its folder, or drops the database. Safe to call twice. */
  close(): Promise<void>
}

export async function startPostgres(): Promise<TestPostgres> {
  if (process.env.DATABASE_URL) return freshDatabase(process.env.DATABASE_URL)
  return startCluster()
}

/** The binaries must be there: a suite that silently skipped its database would prove nothing. */
export function assertPostgresInstalled(): void {
  if (!existsSync(join(POSTGRES_BIN, 'initdb')) || !existsSync(join(POSTGRES_BIN, 'pg_ctl'))) {
    throw new Error(
      `PostgreSQL server binaries not found in ${POSTGRES_BIN}. Install them with \`apt-get install postgresql-15\` ` +
      '(or set POSTGRES_BIN to their folder, or DATABASE_URL to a server the tests may create databases on).',
    )
  }
}

export async function startCluster(): Promise<TestPostgres> {
  assertPostgresInstalled()
  const dir = mkdtempSync(join(tmpdir(), 'mlsds-pg-'))
  const data = join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  // initdb refuses to run as root: the cluster belongs to the postgres user.
  const run = (command: string, args: string[]) => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', join(POSTGRES_BIN, command), ...args]] : [join(POSTGRES_BIN, command), args]
    const result = spawnSync(file, argv, { encoding: 'utf8', timeout: 60_000 })
    if (result.status !== 0) throw new Error(`${command} failed (${result.status}): ${result.stderr || result.stdout || result.error?.message}`)
  }
  let started = false
  const stop = () => {
    if (!started) return
    started = false
    spawnSync(asRoot ? 'runuser' : join(POSTGRES_BIN, 'pg_ctl'), [...(asRoot ? ['-u', 'postgres', '--', join(POSTGRES_BIN, 'pg_ctl')] : []), '-D', data, '-m', 'immediate', '-w', 'stop'], { timeout: 30_000 })
  }
  const remove = () => {
    stop()
    rmSync(dir, { recursive: true, force: true })
  }
  // Last resort: a test process that exits without its after() hooks still removes the cluster.
  process.once('exit', remove)
  try {
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
      chownSync(dir, uid, gid)
    }
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'])
    const port = await freePort()
    // fsync off only risks data when the machine itself crashes; a commit is still written to
    // the OS before it is acknowledged, so stopping the server abruptly loses nothing.
    const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`
    const start = () => {
      if (started) return
      run('pg_ctl', ['-D', data, '-o', serverOptions, '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start'])
      started = true
    }
    start()
    // A server that does not answer at all (frozen, or cut off by the network): SIGSTOP on the
    // postmaster and its backends, SIGCONT to resume.
    const processes = () => {
      const postmaster = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0])
      const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map(Number)
      return [postmaster, ...children]
    }
    const freeze = () => processes().forEach((pid) => process.kill(pid, 'SIGSTOP'))
    const thaw = () => processes().forEach((pid) => process.kill(pid, 'SIGCONT'))
    const url = `postgresql://postgres@127.0.0.1:${port}/postgres`
    return {
      url,
      cluster: { stop, start, freeze, thaw },
      close: async () => {
        process.removeListener('exit', remove)
        remove()
      },
    }
  } catch (err) {
    remove()
    process.removeListener('exit', remove)
    throw err
  }
}

let databases = 0

/** A new, empty database on the server: each service under test gets one. */
export async function freshDatabase(serverUrl: string): Promise<TestPostgres> {
  const name = `mlsds_test_${process.pid}_${Date.now().toString(36)}_${++databases}`
  const admin = new pg.Client({ connectionString: serverUrl })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  let dropped = false
  return {
    url: url.toString(),
    cluster: undefined,
    close: async () => {
      if (dropped) return
      dropped = true
      const client = new pg.Client({ connectionString: serverUrl })
      await client.connect()
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await client.end()
      }
    },
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}
