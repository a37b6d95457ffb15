import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { RestApi } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { StreamClient } from '../helpers/stream-client.js'
import { request } from '../tcp/helpers.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')

describe('the service on PostgreSQL: health, readiness, two instances, an outage', () => {
  let db: TestPostgres
  let a: RunningService
  let b: RunningService
  let apiA: RestApi
  let apiB: RestApi
  before(async () => {
    db = await startPostgres()
    const config = { store: 'postgres', databaseUrl: db.url, databasePoolSize: 4, mlsValidation: 'permissive', keyPackageClaimLimit: { count: 3, windowSeconds: 60 } } as const
    ;[a, b] = await Promise.all([startTestService(config), startTestService(config)])
    apiA = new RestApi(a.httpPort)
    apiB = new RestApi(b.httpPort)
  })
  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()])
    await db?.close()
  })

  const send = (api: RestApi, group: string, sender: string, text: string) =>
    api.call('POST', `/groups/${group}/messages`, { sender_id: sender, message: text64(text), message_type: 'Application' })

  test('GET /health names the store; GET /ready answers once the database does', async () => {
    assert.deepEqual((await apiA.call('GET', '/health')).body, { status: 'ok', store: 'postgres' })
    const ready = await apiA.call('GET', '/ready')
    assert.equal(ready.status, 200)
    assert.deepEqual(ready.body, { status: 'ready', store: 'postgres' })
  })

  test('what one instance accepts, the other serves, and its live streams get it', async () => {
    assert.equal((await apiA.call('POST', '/groups', { group_id: 'shared', creator_id: 'alice' })).status, 201)
    assert.equal((await apiB.call('POST', '/groups/shared/members', { client_id: 'bob' })).status, 200)
    const bobOnB = await StreamClient.connect(b.httpPort, 'bob')
    const aliceOnA = await StreamClient.connect(a.httpPort, 'alice')
    try {
      for (let i = 0; i < 20; i++) assert.equal((await send(i % 2 ? apiB : apiA, 'shared', 'alice', `m${i}`)).status, 201)
      assert.equal((await send(apiB, 'shared', 'bob', 'from bob')).status, 201)
      await bobOnB.waitFor(() => bobOnB.deliveries.length === 20, 'bob\'s 20 deliveries on B')
      await aliceOnA.waitFor(() => aliceOnA.deliveries.length === 1, 'alice\'s delivery on A')
      assert.deepEqual(bobOnB.deliveries.map((d) => d.seq), Array.from({ length: 20 }, (_, i) => i + 1))
      assert.deepEqual(bobOnB.deliveries.map((d) => Buffer.from(String(d.message), 'base64').toString()), Array.from({ length: 20 }, (_, i) => `m${i}`))
      assert.equal((await apiA.messages('shared')).length, 21)
    } finally {
      await Promise.all([bobOnB.close(), aliceOnA.close()])
    }
  })

  test('KEY_PACKAGE_CLAIM_LIMIT counts the claims of a client through every instance together', async () => {
    const erin = await MlsTestClient.create('erin', 1)
    const pool = await Promise.all(Array.from({ length: 5 }, () => erin.createKeyPackage()))
    assert.equal((await apiA.putKeyPackages('erin', pool.map((k) => k.bytes))).status, 200)
    const statuses: number[] = []
    for (const api of [apiA, apiB, apiA, apiB, apiA]) statuses.push((await api.call('GET', '/key-packages/erin')).status)
    assert.deepEqual(statuses, [200, 200, 200, 429, 429], 'three claims in all, whichever instance took them')
    assert.equal((await apiB.count('erin')).total, 2, 'refused claims took nothing')
    const refused = await apiB.call('GET', '/key-packages/erin')
    assert.equal(refused.body.error, 'rate_limited')
    assert.ok(refused.body.retry_after >= 1 && refused.body.retry_after <= 60, String(refused.body.retry_after))
    assert.equal((await apiB.call('GET', '/key-packages/frank')).status, 404, 'another client is not limited by erin\'s claims')
  })

  test('ids a database cannot keep apart (NUL, lone surrogates) are refused as invalid_id, not a 500', async () => {
    for (const id of ['a\u0000b', 'x\ud800', '\udc00y']) {
      const res = await apiA.call('POST', '/groups', { group_id: id, creator_id: 'alice' })
      assert.equal(res.status, 400, JSON.stringify(id))
      assert.equal(res.body.error, 'invalid_id')
    }
    assert.equal((await apiA.call('POST', '/groups', { group_id: 'ok 😀', creator_id: 'alice' })).status, 201, 'a surrogate pair is fine')
  })

  test('database down: 503 unavailable quickly, /ready fails; back up: the service recovers by itself', async (t) => {
    if (!db.cluster) return t.skip('DATABASE_URL was given: this test needs a cluster of its own to stop')
    const stream = await StreamClient.connect(b.httpPort, 'bob', 20)
    try {
      db.cluster.stop()
      const started = Date.now()
      const failed = await send(apiA, 'shared', 'alice', 'lost?')
      assert.equal(failed.status, 503)
      assert.equal(failed.body.error, 'unavailable')
      assert.doesNotMatch(JSON.stringify(failed.body), /ECONN|postgres|127\.0\.0\.1/i, 'no internal details')
      const notReady = await apiB.call('GET', '/ready')
      assert.equal(notReady.status, 503)
      assert.equal(notReady.body.error, 'unavailable')
      assert.equal((await apiB.call('GET', '/groups/shared')).status, 503)
      const claim = await apiB.call('GET', '/key-packages/grace')
      assert.equal(claim.status, 503, 'a claim that cannot be counted is not handed out')
      assert.equal(claim.body.error, 'unavailable')
      // The TCP door says the same: `unavailable`, not `internal`.
      for (const body of [
        { type: 'RelayMessage', group_id: 'shared', sender_id: 'alice', message: [1, 2, 3], message_type: 'Application' },
        { type: 'JoinGroup', group_id: 'shared', client_id: 'carol' },
        { type: 'FetchKeyPackage', client_id: 'grace' },
      ]) {
        const answer = await request(a.tcpPort!, body)
        assert.equal(answer.type, 'Error', body.type)
        assert.equal(answer.code, 'unavailable', body.type)
        assert.match(answer.message, /database is unavailable; retry later/, body.type)
      }
      assert.ok(Date.now() - started < 10_000, 'no hang')
      assert.equal((await apiA.call('GET', '/health')).status, 200, 'liveness does not depend on the database')

      db.cluster.start()
      const deadline = Date.now() + 20_000
      while ((await apiA.call('GET', '/ready')).status !== 200) {
        assert.ok(Date.now() < deadline, 'ready again within 20 s')
        await new Promise((r) => setTimeout(r, 100))
      }
      assert.equal((await send(apiA, 'shared', 'alice', 'after the outage')).status, 201)
      await stream.waitFor(() => stream.deliveries.length === 1, 'the delivery after the outage on B')
      assert.equal(stream.deliveries[0]!.seq, 21)
    } finally {
      db.cluster.start()
      await stream.close()
    }
  })
})
