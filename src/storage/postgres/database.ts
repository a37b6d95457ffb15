import pg from 'pg'
import { StoreUnavailableError } from '../errors.js'

export interface DatabaseOptions {
  readonly connectionString: string
  readonly poolSize: number
  /** Tables live in this schema (created if missing); the tests give each store its own. */
  readonly schema?: string
  /** How long to wait for a connection before answering 503. */
  readonly connectTimeoutMs?: number
  /** Server-side limit per statement, so a stuck query becomes a 503 instead of a hang. */
  readonly statementTimeoutMs?: number
  /**
   * Client-side limit per query, for a server that does not answer at all (frozen, or cut off
   * without a reset): then no statement timeout can fire. The statement timeout + 5 s by default.
   */
  readonly queryTimeoutMs?: number
}

export type Queryable = Pick<pg.PoolClient, 'query'>

// bigint columns (epochs, seqs, unix ms) come back as strings unless parsed: every value we
// store stays below 2^53, so a number is exact.
const toNumber = (value: string) => Number(value)

export function createPool(options: DatabaseOptions, onError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    statement_timeout: options.statementTimeoutMs ?? 15_000,
    // "Query read timeout" (isUnavailable): a 503, and the connection is discarded.
    query_timeout: options.queryTimeoutMs ?? (options.statementTimeoutMs ?? 15_000) + 5000,
    // Notices a server gone from the network under an idle connection.
    keepAlive: true,
    // A transaction left open by a crashed request must not hold group locks forever.
    idle_in_transaction_session_timeout: 30_000,
    options: options.schema ? `-c search_path=${quoteIdent(options.schema)}` : undefined,
    types: { getTypeParser: (oid, format) => (oid === pg.types.builtins.INT8 ? toNumber : pg.types.getTypeParser(oid, format)) } as pg.CustomTypesConfig,
  })
  // An idle client whose server went away emits here; without a listener the process dies.
  pool.on('error', onError)
  return pool
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`
}

/** Connection-level failures (SQLSTATE classes 08, 53, 57, 58 and socket errors) are 503s, not 500s. */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') {
    if (/^(08|53|57|58)/.test(code)) return true
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN', 'ENOENT'].includes(code)) return true
  }
  // The last: a request still running when a stop closed the pool (after SHUTDOWN_TIMEOUT_MS).
  return /timeout exceeded when trying to connect|Connection terminated|Client has encountered a connection error|Query read timeout|connection timeout|Cannot use a pool after calling end on the pool/i.test(err.message)
}

/** Rethrows a connection failure as StoreUnavailableError; anything else unchanged. */
export function translate(err: unknown): never {
  if (err instanceof StoreUnavailableError) throw err
  if (isUnavailable(err)) throw new StoreUnavailableError((err as Error).message, { cause: err })
  throw err
}

const RETRYABLE = new Set(['40001', '40P01'])
const ignore = () => {}

/**
 * Runs fn in one transaction on one pooled client. Deadlocks and serialization failures are
 * retried (they roll back completely, so a retry is safe); a broken connection is discarded.
 */
export async function transaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let client: pg.PoolClient
    try {
      client = await pool.connect()
    } catch (err) {
      translate(err)
    }
    // A checked-out client whose connection dies emits 'error' besides failing its query;
    // unheard, that event would crash the process.
    client.on('error', ignore)
    try {
      await client.query('BEGIN')
      const result = await fn(client)
      await client.query('COMMIT')
      client.off('error', ignore)
      client.release()
      return result
    } catch (err) {
      const broken = isUnavailable(err)
      if (!broken) await client.query('ROLLBACK').catch(() => {})
      client.off('error', ignore)
      client.release(broken ? (err as Error) : undefined)
      const code = (err as { code?: string }).code
      if (code && RETRYABLE.has(code) && attempt < 5) continue
      translate(err)
    }
  }
}

/**
 * One statement that is its own transaction (atomic by itself), taking row locks: deadlocks and
 * serialization failures are retried as in transaction (the statement rolled back completely).
 */
export async function statement<R extends pg.QueryResultRow>(pool: pg.Pool, config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await pool.query<R>(config)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code && RETRYABLE.has(code) && attempt < 5) continue
      translate(err)
    }
  }
}

/** One statement outside a transaction (it is atomic by itself). */
export async function query<R extends pg.QueryResultRow>(pool: pg.Pool, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
  try {
    return await pool.query<R>(text, values)
  } catch (err) {
    translate(err)
  }
}

/** A bytea value (a Buffer, maybe a slice of a shared slab) as its own plain Uint8Array, as memory returns. */
export function toBytes(value: Buffer): Uint8Array {
  return new Uint8Array(value)
}

export function toBuffer(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

/**
 * A page query cut to a byte budget (page-budget.ts): `rows` is a query in seq order with a
 * `seq` and a `data` column and its own LIMIT; of its rows, the leading ones whose data fit in
 * `maxBytes` (a parameter, e.g. '$4') are kept, and always the first. The running sum takes each
 * row's size from its header (octet_length does not fetch TOASTed bytes), so the data of the
 * rows left out is never read.
 */
export function withinBytes(rows: string, maxBytes: string): string {
  return `SELECT b.* FROM (
      SELECT p.*, sum(octet_length(p.data)) OVER (ORDER BY p.seq ROWS UNBOUNDED PRECEDING) AS page_bytes,
        row_number() OVER (ORDER BY p.seq) AS page_row
      FROM (${rows}) p
    ) b WHERE b.page_row = 1 OR b.page_bytes <= ${maxBytes}::bigint`
}
