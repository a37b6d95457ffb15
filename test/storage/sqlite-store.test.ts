import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import Database from 'better-sqlite3'
import { HANDED_OUT_PURGE_BATCH } from '../../src/storage/handed-out-refs.js'
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/schema.js'
import { SqliteStore } from '../../src/storage/sqlite-store.js'
import { StoreUnavailableError } from '../../src/storage/errors.js'
import { buildTestApp } from '../helpers/app.js'
import { keyPackage, logOf } from './contract/fixtures.js'
import { storeContract } from './store-contract.js'
import { assertUpgradedFromVersion1 } from './upgrade-checks.js'

const dir = mkdtempSync(join(tmpdir(), 'mlsds-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
storeContract(async (options) => SqliteStore.open({ path: join(dir, `contract-${++files}.sqlite`), ...options }))

describe('SQLite specifics', () => {
  test('state outlives the process: reopening the file sees everything, migrations are not applied twice', async () => {
    const path = join(dir, 'durable.sqlite')
    const first = SqliteStore.open({ path })
    await first.createGroup({ groupId: 'g', creatorId: 'a', epoch: 0, createdAt: 1 })
    await first.addMember('g', 'b')
    await first.appendMessage('g', { senderId: 'a', messageType: 'Application', data: new Uint8Array([1, 2, 3]), receivedAt: 1, epoch: null, contentType: null }, { senderMustBeMember: true })
    await first.close()
    const second = SqliteStore.open({ path })
    try {
      assert.deepEqual((await logOf(second, 'g', 0, 10))?.map((m) => [...m.data]), [[1, 2, 3]])
      assert.equal((await second.readDeliveries('b', 0, 10, 1)).lastSeq, 1)
    } finally {
      await second.close()
    }
  })
})

describe('SQLite: handed-out refs and Welcome inboxes stay bounded', () => {
  const readOnly = <T>(path: string, read: (db: Database.Database) => T): T => {
    const db = new Database(path, { readonly: true })
    try {
      return read(db)
    } finally {
      db.close()
    }
  }
  const inspect = <T>(path: string, sql: string): T => readOnly(path, (db) => db.prepare(sql).get() as T)
  /** The query plan's steps, joined: which index a statement uses. */
  const queryPlan = (path: string, sql: string): string =>
    readOnly(path, (db) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((s) => s.detail).join('; '))

  test('each claim forgets a bounded batch of expired refs, found by the expiry index', async () => {
    const path = join(dir, 'purge.sqlite')
    const store = SqliteStore.open({ path })
    try {
      await store.addKeyPackages('bob', Array.from({ length: 40 }, () => keyPackage({ notAfter: 1000 })), 1000)
      for (let i = 0; i < 40; i++) await store.claimKeyPackage('bob', { now: 1000 })
      const rows = () => inspect<{ n: number }>(path, 'SELECT count(*) AS n FROM handed_out_refs').n
      assert.equal(rows(), 40)
      await store.addKeyPackages('carol', Array.from({ length: 3 }, () => keyPackage({ notAfter: 10_000 })), 2000)
      const counts: number[] = []
      for (let i = 0; i < 3; i++) {
        await store.claimKeyPackage('carol', { now: 2000 })
        counts.push(rows())
      }
      const batch = HANDED_OUT_PURGE_BATCH
      assert.deepEqual(counts, [40 - batch + 1, Math.max(0, 40 - 2 * batch) + 2, Math.max(0, 40 - 3 * batch) + 3])
      assert.match(queryPlan(path, `SELECT ref FROM handed_out_refs WHERE expires_at < 5 ORDER BY expires_at LIMIT ${batch}`), /handed_out_refs_expiry/)
    } finally {
      await store.close()
    }
  })

  test('a claim deletes a bounded batch of the client\'s expired packages, found by an index whatever the pool size', async () => {
    const path = join(dir, 'expiry.sqlite')
    const store = SqliteStore.open({ path })
    try {
      await store.addKeyPackages('dave', Array.from({ length: 40 }, (_, i) => keyPackage({ notAfter: 1000 + i })), 1000)
      await store.addKeyPackages('dave', [keyPackage({ notAfter: 10_000, label: 'fresh' })], 1000)
      const left = () => inspect<{ n: number }>(path, "SELECT count(*) AS n FROM key_packages WHERE client_id = 'dave'").n
      const claimed = await store.claimKeyPackage('dave', { now: 5000 })
      assert.equal(claimed && new TextDecoder().decode(claimed.data), 'fresh', 'expired ones left by the batch are skipped')
      const batch = 40 - left()
      assert.ok(batch > 1 && batch < 40, `a bounded batch, more than one: ${batch}`)
      assert.equal(await store.claimKeyPackage('dave', { now: 5000 }), undefined)
      assert.equal((await store.countKeyPackages('dave', 5000)).total, 0)
      assert.equal(left(), Math.max(0, 40 - 2 * batch))
      assert.match(queryPlan(path, "SELECT id FROM key_packages WHERE client_id = 'big' AND NOT legacy AND not_after < 5000 ORDER BY not_after LIMIT 16"), /key_packages_expiry/)
      assert.match(queryPlan(path, "SELECT * FROM key_packages WHERE client_id = 'big' AND NOT legacy AND NOT last_resort AND ciphersuite = 2 ORDER BY id LIMIT 1"), /key_packages_pick/)
    } finally {
      await store.close()
    }
  })

  test('a page of the client list is searched from its cursor in the index, not scanned from the first client', async () => {
    const path = join(dir, 'client-pages.sqlite')
    const store = SqliteStore.open({ path })
    try {
      for (let i = 0; i < 30; i++) await store.addKeyPackages(`c${String(i).padStart(2, '0')}`, [keyPackage()], 1000)
      assert.deepEqual(await store.listKeyPackageClients(1000, { after: 'c27' }), ['c28', 'c29'])
      assert.match(queryPlan(path, "SELECT DISTINCT client_id FROM key_packages WHERE (legacy OR not_after IS NULL OR not_after >= 5) AND client_id > 'c27' ORDER BY client_id LIMIT 10"), /SEARCH key_packages USING .*INDEX .*\(client_id>\?\)/)
    } finally {
      await store.close()
    }
  })

  test('a message\'s deliveries share its bytes with the log; deleting the group copies them, found by an index, into those still queued', async () => {
    const path = join(dir, 'shared-bytes.sqlite')
    const store = SqliteStore.open({ path })
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      for (const m of ['bob', 'carol']) await store.addMember('g', m)
      await store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: new TextEncoder().encode('first'), receivedAt: 1000, epoch: null, contentType: null }, { senderMustBeMember: true })
      const shared = () => inspect<{ n: number }>(path, 'SELECT count(*) AS n FROM deliveries WHERE data IS NULL').n
      assert.equal(shared(), 2, 'no copy per recipient')
      assert.match(queryPlan(path, "UPDATE deliveries SET data = NULL WHERE group_id = 'g' AND data IS NULL"), /deliveries_shared_bytes/)
      assert.equal(await store.deleteGroup('g'), true)
      assert.equal(shared(), 0)
      for (const m of ['bob', 'carol']) {
        assert.deepEqual((await store.readDeliveries(m, 0, 10, 1000)).deliveries.map((d) => new TextDecoder().decode(d.data)), ['first'], m)
      }
    } finally {
      await store.close()
    }
  })

  test('streams woken together read a message once: its deliveries share one array; a Welcome keeps its own bytes', async () => {
    const store = SqliteStore.open({ path: join(dir, 'page-bytes.sqlite') })
    try {
      const members = Array.from({ length: 40 }, (_, i) => `m${i}`)
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      for (const m of members) await store.addMember('g', m)
      const big = new Uint8Array(32 * 1024).fill(7)
      await store.appendMessage('g', { senderId: 'alice', messageType: 'Commit', data: big, receivedAt: 1000, epoch: null, contentType: null }, { senderMustBeMember: true },
        { welcome: { data: new Uint8Array([1, 2, 3]), recipients: ['carol'] } })
      await store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: new Uint8Array([9]), receivedAt: 1000, epoch: null, contentType: null }, { senderMustBeMember: true })
      const pages = await store.readDeliveryPages([...members, 'carol'].map((clientId) => ({ clientId, after: 0 })), 100, 2000)
      const firsts = new Set(pages.slice(0, 40).map((p) => p.deliveries[0]!.data))
      assert.equal(firsts.size, 1, 'every member has the same array of the first message')
      assert.deepEqual([...firsts][0], big)
      assert.equal(new Set(pages.slice(0, 40).map((p) => p.deliveries[1]!.data)).size, 1)
      assert.deepEqual(pages[40]!.deliveries.map((d) => [d.kind, [...d.data]]), [['welcome', [1, 2, 3]], ['message', [9]]])
      assert.notEqual((await store.readDeliveries('m0', 0, 10, 2000)).deliveries[0]!.data, [...firsts][0], 'a later read has arrays of its own')
      assert.deepEqual((await store.readDeliveries('m0', 0, 10, 2000, 1)).deliveries.map((d) => d.data.length), [32 * 1024], 'the budget counts the log\'s bytes')
    } finally {
      await store.close()
    }
  })

  test('a write lock held by another process: 503 unavailable after a short wait, not a 500 after 5 s; then back to normal', async () => {
    const path = join(dir, 'locked.sqlite')
    const store = SqliteStore.open({ path })
    const { app } = await buildTestApp({ store: 'sqlite', sqlitePath: path })
    const other = new Database(path)
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 1 })
      other.exec('BEGIN IMMEDIATE')
      const started = Date.now()
      await assert.rejects(store.addMember('g', 'bob'), (err) => err instanceof StoreUnavailableError && (err as StoreUnavailableError).code === 'unavailable')
      await assert.rejects(store.createGroup({ groupId: 'h', creatorId: 'alice', epoch: 0, createdAt: 1 }), StoreUnavailableError)
      const res = await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'h', creator_id: 'alice' } })
      assert.deepEqual([res.statusCode, res.json().error], [503, 'unavailable'])
      assert.ok(Date.now() - started < 3000, `waited ${Date.now() - started} ms`)
      assert.equal((await store.getGroup('g'))?.groupId, 'g', 'reads need no write lock (WAL)')
      other.exec('COMMIT')
      assert.deepEqual((await store.addMember('g', 'bob'))?.members, ['alice', 'bob'])
      assert.equal((await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'h', creator_id: 'alice' } })).statusCode, 201)
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK')
      other.close()
      await app.close()
      await store.close()
    }
  })

  test('a file from before this version migrates: old refs route for a week, old Welcomes keep their seqs', async () => {
    const path = join(dir, 'version-1.sqlite')
    const old = new Database(path)
    old.exec(SQLITE_MIGRATIONS[0]!)
    old.pragma('user_version = 1')
    const at = Date.now()
    old.prepare("INSERT INTO handed_out_refs (ref, client_id) VALUES ('old-ref', 'bob')").run()
    old.prepare("INSERT INTO client_queues (client_id, last_welcome) VALUES ('carol', 2)").run()
    for (const seq of [1, 2]) old.prepare("INSERT INTO welcomes (client_id, seq, group_id, sender_id, data, received_at) VALUES ('carol', ?, 'g', 'alice', x'00', ?)").run(seq, at)
    // A delivery with its own copy of the bytes, as every one had before they were shared with the log.
    old.prepare("INSERT INTO client_queues (client_id, last_seq) VALUES ('dave', 1)").run()
    old.prepare(`INSERT INTO deliveries (client_id, seq, group_id, group_seq, sender_id, kind, message_type, epoch, content_type, data, received_at)
      VALUES ('dave', 1, 'gone', 1, 'alice', 'message', 'Application', NULL, NULL, x'0102', ?)`).run(at)
    old.close()
    const store = SqliteStore.open({ path })
    try {
      await assertUpgradedFromVersion1(store, at)
      assert.deepEqual((await store.readDeliveries('dave', 0, 10, at)).deliveries.map((d) => [...d.data]), [[1, 2]])
      assert.equal(inspect<{ v: number }>(path, 'SELECT user_version AS v FROM pragma_user_version').v, SQLITE_MIGRATIONS.length)
    } finally {
      await store.close()
    }
  })
})

describe('STORE=sqlite', () => {
  test('the service runs on the file and keeps its state across a restart', async () => {
    const { startTestService } = await import('../helpers/service.js')
    const { RestApi } = await import('../helpers/rest-api.js')
    const config = { store: 'sqlite', sqlitePath: join(dir, 'service.sqlite'), mlsValidation: 'permissive' } as const
    let running = await startTestService(config)
    let api = new RestApi(running.httpPort)
    assert.deepEqual((await api.call('GET', '/health')).body, { status: 'ok', store: 'sqlite' })
    assert.equal((await api.call('GET', '/ready')).status, 200)
    assert.equal((await api.createGroup('g', 'alice')).status, 201)
    assert.equal((await api.send('g', 'alice', new Uint8Array([1, 2, 3]), 'Application')).status, 201)
    await running.close()
    running = await startTestService(config)
    api = new RestApi(running.httpPort)
    try {
      assert.equal((await api.messages('g')).length, 1)
    } finally {
      await running.close()
    }
  })
})
