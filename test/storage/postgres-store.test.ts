import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { HANDED_OUT_PURGE_BATCH } from '../../src/storage/handed-out-refs.js'
import { PostgresStore } from '../../src/storage/postgres-store.js'
import { APPEND_BATCH_BYTES, APPEND_BATCH_DELIVERIES, APPEND_BATCH_LIMIT, AppendQueue, IDEMPOTENCY_PURGE_BATCH } from '../../src/storage/postgres/append.js'
import { createPool } from '../../src/storage/postgres/database.js'
import { sweepRateCounts } from '../../src/storage/postgres/rate-limiter.js'
import { readWelcomes } from '../../src/storage/postgres/welcomes.js'
import { readDeliveryPages } from '../../src/storage/postgres/queues.js'
import { StoreUnavailableError } from '../../src/storage/errors.js'
import { NO_BYTE_LIMIT } from '../../src/storage/page-budget.js'
import { RateLimiterRes } from 'rate-limiter-flexible'
import { DEFAULT_STORE_OPTIONS } from '../../src/storage/options.js'
import type { AppendCondition } from '../../src/storage/store.js'
import { EXPIRED_PURGE_BATCH } from '../../src/storage/postgres/key-packages.js'
import { MIGRATIONS } from '../../src/storage/postgres/migrations.js'
import { startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { createBackend } from '../../src/storage/index.js'
import { silentLogger, testConfig } from '../helpers/app.js'
import { keyPackage, logOf } from './contract/fixtures.js'
import { storeContract } from './store-contract.js'
import { assertUpgradedFromVersion1 } from './upgrade-checks.js'

let db: TestPostgres
before(async () => {
  db = await startPostgres()
})
after(() => db?.close())

// Each store gets a schema of its own: a fresh, empty database for every test.
let schemas = 0
storeContract((options) => PostgresStore.open({ connectionString: db.url, poolSize: 10, schema: `contract_${++schemas}`, ...options }))

describe('PostgreSQL specifics', () => {
  test('migrations are versioned and applied once, even by instances starting at the same time', async () => {
    const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'racing' })))
    await Promise.all(stores.map((s) => s.close()))
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const { rows } = await client.query('SELECT version FROM racing.schema_migrations ORDER BY version')
      assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version))
    } finally {
      await client.end()
    }
  })

  test('DATABASE_STATEMENT_TIMEOUT reaches the pool: a statement stuck behind a lock is cancelled after it, as a 503', async () => {
    const backend = await createBackend({ ...testConfig(), store: 'postgres', databaseUrl: db.url, databaseStatementTimeoutSeconds: 1 }, silentLogger)
    const locker = new pg.Client({ connectionString: db.url })
    await locker.connect()
    try {
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE groups IN ACCESS EXCLUSIVE MODE')
      // Held for up to 10 s: the default timeout (15 s) would wait that out and then answer.
      const read = backend.store.getGroup('g').then(() => 'answered', (err: unknown) => err)
      const outcome = await Promise.race([read, new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10_000))])
      assert.ok(outcome instanceof StoreUnavailableError, `cancelled by the 1 s statement timeout, not ${String(outcome)}`)
      assert.match(String((outcome.cause as Error | undefined)?.message), /statement timeout/)
    } finally {
      await locker.query('ROLLBACK')
      await locker.end()
      await backend.close()
    }
  })

  test('state outlives the store: a new pool on the same schema sees everything', async () => {
    const first = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'durable' })
    await first.createGroup({ groupId: 'g', creatorId: 'a', epoch: 0, createdAt: 1 })
    await first.addMember('g', 'b')
    await first.appendMessage('g', { senderId: 'a', messageType: 'Application', data: new Uint8Array([1, 2, 3]), receivedAt: 1, epoch: null, contentType: null }, { senderMustBeMember: true })
    await first.close()
    const second = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'durable' })
    try {
      assert.deepEqual((await logOf(second, 'g', 0, 10))?.map((m) => [...m.data]), [[1, 2, 3]])
      assert.equal((await second.readDeliveries('b', 0, 10, 1)).lastSeq, 1)
    } finally {
      await second.close()
    }
  })
})

/** A pool of one connection on the schema that tells of each query (text form) it sends, and of its result. */
function watchedPool(schema: string, watch: { sent?: (text: string) => void; answered?: (result: pg.QueryResult) => void }): pg.Pool {
  const pool = createPool({ connectionString: db.url, poolSize: 1, schema }, () => {})
  const query = pool.query.bind(pool) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>
  ;(pool as unknown as { query: typeof query }).query = async (text, values) => {
    watch.sent?.(text)
    const result = await query(text, values)
    watch.answered?.(result)
    return result
  }
  return pool
}

describe('PostgreSQL: handed-out refs and Welcome inboxes stay bounded', () => {
  const inspect = async <T extends pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<T[]> => {
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      return (await client.query<T>(sql, values)).rows
    } finally {
      await client.end()
    }
  }

  test('each claim forgets a bounded batch of expired refs', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'purge' })
    try {
      await store.addKeyPackages('bob', Array.from({ length: 40 }, () => keyPackage({ notAfter: 1000 })), 1000)
      for (let i = 0; i < 40; i++) await store.claimKeyPackage('bob', { now: 1000 })
      const rows = async () => (await inspect<{ n: number }>('SELECT count(*)::integer AS n FROM purge.handed_out_refs'))[0]!.n
      assert.equal(await rows(), 40)
      await store.addKeyPackages('carol', Array.from({ length: 3 }, () => keyPackage({ notAfter: 10_000 })), 2000)
      const counts: number[] = []
      for (let i = 0; i < 3; i++) {
        await store.claimKeyPackage('carol', { now: 2000 })
        counts.push(await rows())
      }
      const batch = HANDED_OUT_PURGE_BATCH
      assert.deepEqual(counts, [40 - batch + 1, Math.max(0, 40 - 2 * batch) + 2, Math.max(0, 40 - 3 * batch) + 3])
      const indexes = await inspect<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE schemaname = 'purge' AND tablename = 'handed_out_refs'")
      assert.ok(indexes.some((i) => /\(expires_at\)/.test(i.indexdef)), 'the purge finds expired refs by an index')
    } finally {
      await store.close()
    }
  })

  test('a claim deletes a bounded batch of the client\'s expired packages, found by an index whatever the pool size', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'expiry' })
    try {
      await store.addKeyPackages('dave', Array.from({ length: 40 }, (_, i) => keyPackage({ notAfter: 1000 + i })), 1000)
      await store.addKeyPackages('dave', [keyPackage({ notAfter: 10_000, label: 'fresh' })], 1000)
      const left = async () => (await inspect<{ n: number }>("SELECT count(*)::integer AS n FROM expiry.key_packages WHERE client_id = 'dave'"))[0]!.n
      const claimed = await store.claimKeyPackage('dave', { now: 5000 })
      assert.equal(claimed && new TextDecoder().decode(claimed.data), 'fresh', 'expired ones left by the batch are skipped')
      assert.equal(await left(), 40 - EXPIRED_PURGE_BATCH)
      assert.equal(await store.claimKeyPackage('dave', { now: 5000 }), undefined)
      assert.equal((await store.countKeyPackages('dave', 5000)).total, 0)
      assert.equal(await left(), 40 - 2 * EXPIRED_PURGE_BATCH)

      // A pool of 10,000: the purge and the pick read the index, not the pool.
      await inspect(`INSERT INTO expiry.key_packages (client_id, ref, data, ciphersuite, last_resort, legacy, not_after, stored_at)
        SELECT 'big', 'r' || i, '\\x00', 1 + i % 2, false, false, 2000000000, 1 FROM generate_series(1, 10000) AS i;
        ANALYZE expiry.key_packages`)
      const plan = async (sql: string) => (await inspect<{ 'QUERY PLAN': string }>(`EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ${sql}`)).map((r) => r['QUERY PLAN']).join('\n')
      const purge = await plan("SELECT id FROM expiry.key_packages WHERE client_id = 'big' AND NOT legacy AND not_after < 5000 ORDER BY not_after LIMIT 16")
      assert.match(purge, /Index Scan using key_packages_expiry/)
      const pick = await plan("SELECT id FROM expiry.key_packages WHERE client_id = 'big' AND NOT legacy AND NOT last_resort AND ciphersuite = 2 ORDER BY id LIMIT 1")
      assert.match(pick, /Index (Only )?Scan using key_packages_pick/)
      for (const p of [purge, pick]) {
        // Execution only: planning reads the catalog, whatever the table holds.
        const buffers = [...p.split('Planning')[0]!.matchAll(/shared (?:hit|read)=(\d+)/g)].map((m) => Number(m[1]))
        assert.ok(Math.max(...buffers) < 20, `a handful of pages, not the pool's: ${p}`)
      }
    } finally {
      await store.close()
    }
  })

  test('an append deletes a bounded batch of the group\'s expired idempotency keys', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'idem', idempotencyWindowMs: 1000 })
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'a', epoch: 0, createdAt: 1 })
      await inspect(`INSERT INTO idem.idempotency_keys (group_id, key, seq, epoch, message_type, accepted_at)
        SELECT 'g', 'key:a:old-' || i, i, 0, 'Application', i FROM generate_series(1, 200) AS i`)
      const keys = async () => (await inspect<{ n: number }>("SELECT count(*)::integer AS n FROM idem.idempotency_keys WHERE group_id = 'g'"))[0]!.n
      const append = (key: string) => store.appendMessage('g', { senderId: 'a', messageType: 'Application', data: new Uint8Array([1]), receivedAt: 10_000, epoch: null, contentType: null },
        { senderMustBeMember: true, retry: { sameBytes: false, key } })
      assert.equal((await append('old-1')).ok && (await keys()), 200 - IDEMPOTENCY_PURGE_BATCH + 1, 'an expired key matches nothing; it is replaced')
      const again = await append('old-1')
      assert.ok(again.ok && again.duplicate && again.seq === 1, 'the new key matches')
      await append('new-2')
      assert.equal(await keys(), Math.max(0, 200 - 2 * IDEMPOTENCY_PURGE_BATCH) + 2)
    } finally {
      await store.close()
    }
  })

  test('appends to one group that wait for the one in flight go together, in arrival order, each with its own outcome', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 4, schema: 'batches', idempotencyWindowMs: 60_000 })
    const pool = createPool({ connectionString: db.url, poolSize: 4, schema: 'batches' }, () => {})
    const statements: string[] = []
    const query = pool.query.bind(pool) as (config: pg.QueryConfig) => Promise<pg.QueryResult>
    ;(pool as unknown as { query: typeof query }).query = (config) => {
      // append_messages with the number of appends it carries
      statements.push(config.name === 'append_messages' ? `append_messages×${(config.values![1] as unknown[]).length}` : config.name ?? config.text)
      return query(config)
    }
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      await store.addMember('g', 'bob')
      const appends = new AppendQueue(pool, { ...DEFAULT_STORE_OPTIONS, idempotencyWindowMs: 60_000 })
      const plain = (sender: string, label: string, condition: Partial<AppendCondition> = {}) => appends.append('g',
        { senderId: sender, messageType: 'Application', data: new TextEncoder().encode(label), receivedAt: 1000, epoch: 0, contentType: 'application' },
        { senderMustBeMember: true, ...condition }, {})
      const results = await Promise.all([
        plain('alice', 'first, alone'),
        plain('bob', 'b1', { retry: { sameBytes: true, key: 'k' } }),
        plain('mallory', 'not a member'),
        plain('bob', 'b1 again', { retry: { sameBytes: false, key: 'k' } }),
        plain('alice', 'a commit', { epoch: { expected: 0, advance: true } }),
        plain('bob', 'late for epoch 0', { epoch: { expected: 0, advance: false } }),
        plain('bob', 'b1', { retry: { sameBytes: true } }),
        ...Array.from({ length: APPEND_BATCH_LIMIT + 5 }, (_, i) => plain(i % 2 ? 'alice' : 'bob', `m${i}`)),
      ])
      assert.deepEqual(results.slice(0, 7), [
        { ok: true, seq: 1, epoch: 0, messageType: 'Application', duplicate: false, recipients: ['bob'] },
        { ok: true, seq: 2, epoch: 0, messageType: 'Application', duplicate: false, recipients: ['alice'] },
        { ok: false, reason: 'not_member' },
        { ok: true, seq: 2, epoch: 0, messageType: 'Application', duplicate: true, recipients: [] },
        { ok: true, seq: 3, epoch: 1, messageType: 'Application', duplicate: false, recipients: ['bob'] },
        { ok: false, reason: 'stale_epoch', currentEpoch: 1 },
        { ok: true, seq: 2, epoch: 0, messageType: 'Application', duplicate: true, recipients: [] },
      ])
      assert.deepEqual(results.slice(7).map((r) => r.ok && r.seq), Array.from({ length: APPEND_BATCH_LIMIT + 5 }, (_, i) => 4 + i), 'seqs in arrival order')
      assert.deepEqual(statements, ['append_message', `append_messages×${APPEND_BATCH_LIMIT}`, 'append_messages×11'], 'one alone, then the waiting ones in batches of at most APPEND_BATCH_LIMIT')
      const stored = await logOf(store, 'g', 0, 1000)
      assert.equal(stored?.length, 3 + APPEND_BATCH_LIMIT + 5)
      assert.deepEqual(stored?.slice(0, 4).map((m) => new TextDecoder().decode(m.data)), ['first, alone', 'b1', 'a commit', 'm0'])
      const fromAlice = Array.from({ length: APPEND_BATCH_LIMIT + 5 }, (_, i) => i).filter((i) => i % 2).length
      assert.equal((await store.readDeliveries('bob', 0, 1000, 1000)).lastSeq, 2 + fromAlice, 'bob gets what alice sent')

      statements.length = 0
      const [next, another] = await Promise.all([plain('alice', 'idle again'), plain('bob', 'waits')])
      assert.ok(next.ok && another.ok && another.seq === next.seq + 1)
      assert.deepEqual(statements, ['append_message', 'append_messages×1'], 'an idle group starts alone again')

      // A call stays about as large as one append to a big group: deliveries and bytes are bounded too.
      const members = Array.from({ length: 30 }, (_, i) => `member-${i}`)
      await store.createGroup({ groupId: 'big', creatorId: members[0]!, epoch: 0, createdAt: 1 })
      for (const member of members.slice(1)) await store.addMember('big', member)
      const toBig = (i: number, size = 10) => appends.append('big',
        { senderId: members[i % 30]!, messageType: 'Application', data: new Uint8Array(size).fill(i), receivedAt: 1000, epoch: null, contentType: null },
        { senderMustBeMember: true }, {})
      statements.length = 0
      const perCall = Math.floor(APPEND_BATCH_DELIVERIES / 29)
      const big = await Promise.all(Array.from({ length: 41 }, (_, i) => toBig(i)))
      assert.deepEqual(big.map((r) => r.ok && r.seq), Array.from({ length: 41 }, (_, i) => i + 1))
      assert.deepEqual(statements, ['append_message', `append_messages×${perCall}`, `append_messages×${40 - perCall}`], '29 recipients each: at most APPEND_BATCH_DELIVERIES deliveries per call')
      statements.length = 0
      const large = await Promise.all(Array.from({ length: 7 }, (_, i) => plain(i % 2 ? 'alice' : 'bob', 'x'.repeat(APPEND_BATCH_BYTES / 4))))
      assert.ok(large.every((r) => r.ok && !r.duplicate))
      assert.deepEqual(statements, ['append_message', 'append_messages×4', 'append_messages×2'], 'at most APPEND_BATCH_BYTES of messages per call')
    } finally {
      await pool.end()
      await store.close()
    }
  })

  test('a message\'s deliveries share its bytes with the log; deleting the group, even mid-append, copies them into those still queued', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 6, schema: 'shared_bytes' })
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      for (const m of ['bob', 'carol']) await store.addMember('g', m)
      const send = (label: string) => store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: new TextEncoder().encode(label), receivedAt: 1000, epoch: null, contentType: null }, { senderMustBeMember: true })
      await send('first')
      const stored = async () => inspect<{ client_id: string; shared: boolean }>('SELECT client_id, data IS NULL AS shared FROM shared_bytes.deliveries ORDER BY client_id, seq')
      assert.deepEqual(await stored(), [{ client_id: 'bob', shared: true }, { client_id: 'carol', shared: true }], 'no copy per recipient')
      assert.deepEqual((await store.readDeliveries('bob', 0, 10, 1000)).deliveries.map((d) => new TextDecoder().decode(d.data)), ['first'])

      // Appends racing the delete: every one acknowledged is delivered with its bytes; none is left without.
      const labels = Array.from({ length: 20 }, (_, i) => `m${i}`)
      const [results, deleted] = await Promise.all([Promise.all(labels.map(send)), store.deleteGroup('g')])
      assert.equal(deleted, true)
      const accepted = labels.filter((_, i) => results[i]!.ok)
      assert.deepEqual((await stored()).filter((r) => r.shared), [], 'the group is gone: every queued delivery has its own bytes')
      const bob = (await store.readDeliveries('bob', 0, 100, 1000)).deliveries.map((d) => new TextDecoder().decode(d.data))
      assert.deepEqual(bob, ['first', ...accepted], 'each acknowledged message once, with its own bytes, in order')
    } finally {
      await store.close()
    }
  })

  test('a server that does not answer (frozen): every request is unavailable within the query timeout, appends queued behind it at once', async (t) => {
    if (!db.cluster) return t.skip('DATABASE_URL was given: this test needs a cluster of its own to freeze')
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 3, schema: 'frozen', statementTimeoutMs: 500, queryTimeoutMs: 1500, connectTimeoutMs: 1500 })
    const send = (i: number) => store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: new Uint8Array([i]), receivedAt: 1000, epoch: null, contentType: null }, { senderMustBeMember: true })
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      await Promise.all([send(1), send(2), store.getGroup('g')])
      db.cluster.freeze()
      const started = Date.now()
      const outcomes = await Promise.allSettled([...Array.from({ length: 20 }, (_, i) => send(10 + i)), store.getGroup('g'), store.readMessages('g', 0, 10)])
      const waited = Date.now() - started
      db.cluster.thaw()
      assert.deepEqual(outcomes.map((o) => o.status === 'rejected' && o.reason instanceof StoreUnavailableError), outcomes.map(() => true), 'each one 503 unavailable')
      // Before, no client-side timeout: each waited until the thaw, whenever that came.
      assert.ok(waited < 6000, `answered after ${waited} ms`)
      const deadline = Date.now() + 20_000
      for (;;) {
        const after = await send(100).catch((err: unknown) => err)
        if (!(after instanceof StoreUnavailableError)) {
          assert.ok(after && (after as { ok?: boolean }).ok, 'appends work again after the thaw')
          break
        }
        assert.ok(Date.now() < deadline, 'back within 20 s')
      }
    } finally {
      db.cluster.thaw()
      await store.close()
    }
  })

  test('a request still running when a stop has closed the store is unavailable (503), not an internal error', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'closed_pool' })
    await store.close()
    await assert.rejects(store.getGroup('g'), StoreUnavailableError)
    await assert.rejects(store.addKeyPackages('bob', [keyPackage()], 1), StoreUnavailableError)
  })

  test('a join racing the delete of its group finds no group (it was a foreign key violation, a 500)', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 4, schema: 'join_delete' })
    try {
      const outcomes = { joined: 0, noGroup: 0 }
      for (let i = 0; i < 60; i++) {
        await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
        const [joined, deleted] = await Promise.all([store.addMember('g', 'bob'), store.deleteGroup('g')])
        assert.equal(deleted, true)
        if (joined) outcomes.joined++
        else outcomes.noGroup++
      }
      assert.equal(outcomes.joined + outcomes.noGroup, 60)
      assert.equal(await store.getGroup('g'), undefined)
    } finally {
      await store.close()
    }
  })

  test('live streams woken together get a message\'s bytes once per statement, as one array, not once per member', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'page_bytes' })
    const carried: number[] = []
    const pool = watchedPool('page_bytes', { answered: (result) => carried.push(result.rows.filter((r: { data?: Buffer | null }) => r.data != null).length) })
    try {
      const members = Array.from({ length: 40 }, (_, i) => `m${i}`)
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      for (const m of members) await store.addMember('g', m)
      const big = new Uint8Array(32 * 1024).fill(7)
      const condition = { senderMustBeMember: true }
      await store.appendMessage('g', { senderId: 'alice', messageType: 'Commit', data: big, receivedAt: 1000, epoch: null, contentType: null }, condition,
        { welcome: { data: new Uint8Array([1, 2, 3]), recipients: ['carol'] } })
      await store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: new Uint8Array([9]), receivedAt: 1000, epoch: null, contentType: null }, condition)
      const reads = [...members, 'carol'].map((clientId) => ({ clientId, after: 0 }))
      const pages = await readDeliveryPages(pool, DEFAULT_STORE_OPTIONS.retention, reads, 100, 2000, NO_BYTE_LIMIT)
      assert.deepEqual(carried, [3], 'one statement; the two messages and the Welcome carry bytes, once each')
      const firsts = new Set(pages.slice(0, 40).map((p) => p.deliveries[0]!.data))
      assert.equal(firsts.size, 1, 'every member has the same array of the first message')
      assert.deepEqual([...firsts][0], big)
      assert.equal(new Set(pages.slice(0, 40).map((p) => p.deliveries[1]!.data)).size, 1)
      assert.deepEqual(pages[40]!.deliveries.map((d) => [d.kind, [...d.data]]), [['welcome', [1, 2, 3]], ['message', [9]]], 'carol joined with the Welcome: its own bytes, then the next message')
      assert.deepEqual(pages.map((p) => p.deliveries.length), Array.from({ length: 41 }, () => 2))
    } finally {
      await pool.end()
      await store.close()
    }
  })

  test('reading a Welcome inbox writes only when retention has something to drop', async () => {
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'welcome_reads' })
    const statements: string[] = []
    const pool = watchedPool('welcome_reads', { sent: (text) => statements.push(/^\s*WITH cut AS/.test(text) ? 'enforce' : /^\s*SELECT/.test(text) ? 'read' : text) })
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      for (const [i, at] of [[1, 1000], [2, 2000], [3, 3000]] as const) {
        await store.appendMessage('g', { senderId: 'alice', messageType: 'Welcome', data: new Uint8Array([i]), receivedAt: at, epoch: null, contentType: 'welcome' },
          { senderMustBeMember: true }, { welcome: { data: new Uint8Array([i]), recipients: ['carol'] } })
      }
      const read = async (retention: { maxMessages: number; maxAgeMs: number }, now: number) => {
        statements.length = 0
        const seqs = (await readWelcomes(pool, retention, 'carol', 0, 10, now, NO_BYTE_LIMIT)).map((w) => w.seq)
        return { seqs, statements: [...statements] }
      }
      assert.deepEqual(await read({ maxMessages: 10, maxAgeMs: 10_000 }, 4000), { seqs: [1, 2, 3], statements: ['read'] })
      assert.deepEqual(await readWelcomes(pool, { maxMessages: 10, maxAgeMs: 10_000 }, 'nobody', 0, 10, 4000, NO_BYTE_LIMIT), [], 'no inbox: nothing, and no write')
      assert.deepEqual(await read({ maxMessages: 2, maxAgeMs: 10_000 }, 4000), { seqs: [2, 3], statements: ['read', 'enforce', 'read'] }, 'one too many')
      assert.deepEqual(await read({ maxMessages: 2, maxAgeMs: 10_000 }, 4000), { seqs: [2, 3], statements: ['read'] }, 'dropped once')
      assert.deepEqual(await read({ maxMessages: 10, maxAgeMs: 10_000 }, 12_500), { seqs: [3], statements: ['read', 'enforce', 'read'] }, 'the oldest kept is too old')
      assert.deepEqual(await read({ maxMessages: 10, maxAgeMs: 10_000 }, 12_500), { seqs: [3], statements: ['read'] })
    } finally {
      await pool.end()
      await store.close()
    }
  })

  test('claim counts: instances on one schema share each client\'s window; ended windows are swept by an index', async () => {
    const limit = { count: 2, windowSeconds: 2 }
    const [a, b] = await Promise.all([1, 2].map(() => PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'claim_counts' })))
    const pool = createPool({ connectionString: db.url, poolSize: 1, schema: 'claim_counts' }, () => {})
    try {
      const [onA, onB] = [a!.rateLimiter('claims', limit), b!.rateLimiter('claims', limit)]
      const opened = Date.now()
      assert.equal((await onA.consume('bob')).remainingPoints, 1)
      assert.equal((await onB.consume('bob')).remainingPoints, 0, 'the claim through B counts into the window A opened')
      const refused = await onA.consume('bob').then(() => undefined, (res: unknown) => res)
      assert.ok(refused instanceof RateLimiterRes, String(refused))
      assert.ok(refused.msBeforeNext > 0 && refused.msBeforeNext <= 2000, String(refused.msBeforeNext))
      assert.equal((await onB.consume('carol')).remainingPoints, 1, 'another client has a window of its own')
      // Ids are counted as text: 256 characters, quotes and object keys included.
      for (const id of ['x'.repeat(256), "o'neil", '__proto__']) assert.equal((await onA.consume(id)).remainingPoints, 1, id)
      const rows = await inspect<{ key: string; points: number }>('SELECT key, points FROM claim_counts.key_package_claim_counts ORDER BY key')
      assert.deepEqual(rows.find((r) => r.key === 'claims:bob'), { key: 'claims:bob', points: 3 })
      assert.equal(rows.length, 5)

      // The sweep deletes what ended before `now`, nothing else.
      assert.equal(await sweepRateCounts(pool, opened - 1000), 0)
      assert.equal(await sweepRateCounts(pool, Date.now() + 2001), 5)
      assert.equal(await onA.consume('bob').then((r) => r.remainingPoints), 1, 'a new window once the old one is gone')
      const indexes = await inspect<{ indexdef: string }>("SELECT indexdef FROM pg_indexes WHERE schemaname = 'claim_counts' AND tablename = 'key_package_claim_counts'")
      assert.ok(indexes.some((i) => /\(expire\)/.test(i.indexdef)), 'the sweep finds ended windows by an index')

      // Without a sweep, a window that ended is reset by the next claim.
      await new Promise((r) => setTimeout(r, 2100))
      assert.equal((await onB.consume('carol')).remainingPoints, 1)

      // MESSAGE_RATE_LIMIT counts in the same table, in windows of its own.
      assert.equal((await onA.consume('carol')).remainingPoints, 0)
      const [messagesA, messagesB] = [a!.rateLimiter('messages', limit), b!.rateLimiter('messages', limit)]
      assert.equal((await messagesA.consume('carol')).remainingPoints, 1, 'the messages of carol count apart from the claims of her KeyPackages')
      assert.equal((await messagesB.consume('carol')).remainingPoints, 0, 'and across instances')
      assert.ok((await messagesA.consume('carol').then(() => undefined, (res: unknown) => res)) instanceof RateLimiterRes)
    } finally {
      await pool.end()
      await Promise.allSettled([a!.close(), b!.close()])
    }
  })

  test('a schema from version 1 migrates: old refs route for a week, old Welcomes keep their seqs', async () => {
    const at = Date.now()
    await inspect(`CREATE SCHEMA version_1; SET search_path = version_1;
      CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
      ${MIGRATIONS[0]!.sql}
      INSERT INTO schema_migrations (version, name) VALUES (1, 'v1');
      INSERT INTO handed_out_refs (ref, client_id) VALUES ('old-ref', 'bob');
      INSERT INTO client_queues (client_id, last_welcome) VALUES ('carol', 2);
      INSERT INTO welcomes (client_id, seq, group_id, sender_id, data, received_at) VALUES ('carol', 1, 'g', 'alice', '\\x00', ${at}), ('carol', 2, 'g', 'alice', '\\x00', ${at});`)
    const store = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'version_1' })
    try {
      await assertUpgradedFromVersion1(store, at)
      const versions = await inspect<{ version: number }>('SELECT version FROM version_1.schema_migrations ORDER BY version')
      assert.deepEqual(versions.map((r) => r.version), MIGRATIONS.map((m) => m.version))
    } finally {
      await store.close()
    }
  })
})
