import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MlsTestClient } from '../helpers/mls-client.js'
import { startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { RestApi, b64 } from '../helpers/rest-api.js'
import { ServiceProcess } from '../helpers/service-process.js'
import { StreamClient, assertGapFree } from '../helpers/stream-client.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')
const range = (n: number) => Array.from({ length: n }, (_, i) => i)

describe('two service processes on one PostgreSQL database', () => {
  let db: TestPostgres
  const procs: ServiceProcess[] = []
  const apis: RestApi[] = []
  const ports: number[] = []
  const start = async () => {
    // 200 claims of one pool below: KEY_PACKAGE_CLAIM_LIMIT has its own test (test/server/claim-limit.test.ts).
    const { proc, httpPort } = await ServiceProcess.start({ STORE: 'postgres', DATABASE_URL: db.url, DATABASE_POOL_SIZE: '5', MLS_VALIDATION: 'permissive', KEY_PACKAGE_CLAIM_LIMIT: '0' })
    procs.push(proc)
    return { proc, httpPort, api: new RestApi(httpPort) }
  }
  before(async () => {
    db = await startPostgres()
    // Started together: both apply the migrations at once, one waits for the other.
    for (const s of await Promise.all([start(), start()])) {
      apis.push(s.api)
      ports.push(s.httpPort)
    }
  })
  after(async () => {
    await Promise.allSettled(procs.map((p) => p.stop()))
    await db?.close()
  })

  const send = (api: RestApi, group: string, sender: string, text: string) =>
    api.call('POST', `/groups/${group}/messages`, { sender_id: sender, message: text64(text), message_type: 'Application' })

  test('1,000 messages sent alternately to both: subscribers on both get all, in order, exactly once', async () => {
    const [a, b] = apis as [RestApi, RestApi]
    assert.equal((await a.call('POST', '/groups', { group_id: 'relay', creator_id: 'alice' })).status, 201)
    for (const m of ['bob', 'carol']) assert.equal((await b.call('POST', '/groups/relay/members', { client_id: m })).status, 200)
    const bob = await StreamClient.connect(ports[0]!, 'bob')
    const carol = await StreamClient.connect(ports[1]!, 'carol')
    try {
      // Four senders at a time, each message to the other instance than the one before.
      const total = 1000
      let next = 0
      await Promise.all(range(4).map(async () => {
        while (next < total) {
          const i = next++
          const res = await send(i % 2 ? b : a, 'relay', 'alice', `m${i}`)
          assert.equal(res.status, 201, JSON.stringify(res.body))
        }
      }))
      const log = (await a.messages('relay')).concat(await a.messages('relay', 1000))
      assert.equal(log.length, total)
      for (const stream of [bob, carol]) {
        await stream.waitFor(() => stream.deliveries.length >= total, 'all 1,000 deliveries', 60_000)
        assert.equal(stream.deliveries.length, total)
        assert.equal(assertGapFree(stream.deliveries.map((d) => d.seq!)), undefined)
        assert.deepEqual(stream.deliveries.map((d) => d.message), log.map((m) => m.message), 'in the group\'s order')
      }
    } finally {
      await Promise.all([bob.close(), carol.close()])
    }
  })

  test('a long poll on one instance is answered by a message relayed through the other', async () => {
    const [a, b] = apis as [RestApi, RestApi]
    assert.equal((await a.call('POST', '/groups', { group_id: 'polled', creator_id: 'alice' })).status, 201)
    assert.equal((await a.call('POST', '/groups/polled/members', { client_id: 'dora' })).status, 200)
    // 60 s: had the other instance's notification not woken it, the answer would come after a minute, empty.
    const polled = a.call('GET', '/clients/dora/messages?after=0&wait=60')
    await new Promise((resolve) => setTimeout(resolve, 200))
    assert.equal((await send(b, 'polled', 'alice', 'across')).status, 201)
    const reply = await polled
    assert.deepEqual(reply.body.deliveries.map((d: { message: string }) => Buffer.from(d.message, 'base64').toString()), ['across'])
  })

  test('20 concurrent MLS commits for one epoch, split across both: exactly one accepted', async () => {
    const alice = await MlsTestClient.create('alice')
    await alice.createGroup('race')
    assert.equal((await apis[0]!.createGroup('race', 'alice')).status, 201)
    const commits = []
    for (let i = 0; i < 20; i++) {
      commits.push(await alice.selfUpdate())
      alice.rollback()
    }
    const replies = await Promise.all(commits.map((c, i) => apis[i % 2]!.commit('race', 'alice', c)))
    assert.deepEqual(replies.map((r) => r.status).sort(), [201, ...range(19).map(() => 409)])
    assert.ok(replies.filter((r) => r.status === 409).every((r) => r.body.error === 'stale_epoch' && r.body.current_epoch === 1))
    assert.equal((await apis[1]!.group('race')).epoch, 1)
  })

  test('200 concurrent claims on a pool of 50, split across both: 50 distinct successes', async () => {
    const bob = await MlsTestClient.create('pool-owner')
    const packages = []
    for (let i = 0; i < 50; i++) packages.push((await bob.createKeyPackage()).bytes)
    assert.equal((await apis[0]!.putKeyPackages('pool-owner', packages)).status, 200)
    const replies = await Promise.all(range(200).map((i) => apis[i % 2]!.claim('pool-owner')))
    const claimed = replies.filter((r) => r.status === 200).map((r) => r.body.key_package as string)
    assert.equal(claimed.length, 50)
    assert.equal(new Set(claimed).size, 50)
    assert.deepEqual(new Set(claimed), new Set(packages.map(b64)))
    assert.equal(replies.filter((r) => r.status === 404).length, 150)
  })

  test('kill -9 in the middle of a send loop: every 201 is readable afterwards, none twice', async () => {
    const victim = await start()
    const survivor = apis[1]!
    assert.equal((await survivor.call('POST', '/groups', { group_id: 'crash', creator_id: 'alice' })).status, 201)
    const acknowledged: string[] = []
    let stop = false
    const loop = Promise.all(range(4).map(async (lane) => {
      for (let i = 0; !stop; i++) {
        const text = `lane${lane}-${i}`
        try {
          const res = await send(victim.api, 'crash', 'alice', text)
          if (res.status === 201) acknowledged.push(text)
        } catch {
          return // the connection died with the process
        }
      }
    }))
    while (acknowledged.length < 100) await new Promise((r) => setTimeout(r, 10))
    await victim.proc.kill9()
    stop = true
    await loop
    const log = (await survivor.messages('crash')).concat(await survivor.messages('crash', 1000))
    const texts = log.map((m) => Buffer.from(String(m.message), 'base64').toString())
    assert.equal(new Set(texts).size, texts.length, 'nothing stored twice')
    const stored = new Set(texts)
    assert.deepEqual(acknowledged.filter((t) => !stored.has(t)), [], 'every acknowledged message is stored')
    assert.equal(assertGapFree(log.map((m) => m.seq as number)), undefined)

    // A fresh instance after the crash sees the same.
    const fresh = await start()
    assert.equal((await fresh.api.messages('crash')).length, Math.min(log.length, 1000))
  })
})
