import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { RestApi } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { connect, LineReader } from '../tcp/helpers.js'

/**
 * KeyPackage exhaustion (RFC 9420 §16.8): the claims of one client's KeyPackages are limited per
 * window, through both doors together, over real HTTP and TCP with real KeyPackages.
 */
describe('KEY_PACKAGE_CLAIM_LIMIT', () => {
  let running: RunningService
  let api: RestApi
  let tcp: LineReader
  before(async () => {
    running = await startTestService({ keyPackageClaimLimit: { count: 3, windowSeconds: 4 } })
    api = new RestApi(running.httpPort)
    tcp = new LineReader(await connect(running.tcpPort!))
  })
  after(async () => {
    tcp.socket.end()
    await running.close()
  })

  const tcpClaim = async (client: string) => {
    tcp.socket.write(`${JSON.stringify({ type: 'FetchKeyPackage', client_id: client })}\n`)
    return tcp.next()
  }

  test('the claims of one client count across both doors; beyond the limit, without a last-resort KeyPackage, nothing is handed out, and the answer says when to retry', async () => {
    const bob = await MlsTestClient.create('bob', 1)
    const pool = await Promise.all(Array.from({ length: 5 }, () => bob.createKeyPackage()))
    assert.equal((await api.putKeyPackages('bob', pool.map((k) => k.bytes))).status, 200)

    assert.equal((await api.claim('bob')).status, 200)
    assert.ok((await tcpClaim('bob')).key_package)
    assert.equal((await api.claim('bob')).status, 200)

    const refused = await api.claim('bob')
    assert.equal(refused.status, 429)
    assert.equal(refused.body.error, 'rate_limited')
    assert.match(refused.body.message, /KeyPackages of bob were asked for 3 times within 4 s \(KEY_PACKAGE_CLAIM_LIMIT\): its one-time KeyPackages are held back and it has no last-resort KeyPackage; retry in [1-4] s/)
    assert.ok([1, 2, 3, 4].includes(refused.body.retry_after), String(refused.body.retry_after))
    assert.equal(refused.headers.get('retry-after'), String(refused.body.retry_after))
    const overTcp = await tcpClaim('bob')
    assert.equal(overTcp.type, 'Error')
    assert.equal(overTcp.code, 'rate_limited')
    assert.match(overTcp.message, /^Failed to fetch key package: KeyPackages of bob were asked for 3 times/)
    assert.equal((await api.count('bob')).total, 2, 'refused claims took nothing from the pool')

    // Another client's KeyPackages are not limited by bob's claims.
    const carol = await MlsTestClient.create('carol', 1)
    const carols = await Promise.all(Array.from({ length: 4 }, () => carol.createKeyPackage()))
    assert.equal((await api.putKeyPackages('carol', carols.map((k) => k.bytes))).status, 200)
    assert.equal((await api.claim('carol')).status, 200)

    // A bad request is refused before it counts: carol's second and third claims are still allowed.
    assert.equal((await api.claim('carol', 4660)).status, 400)
    assert.equal((await api.claim('carol')).status, 200)
    assert.equal((await api.claim('carol')).status, 200)
    assert.equal((await api.claim('carol')).status, 429)

    // The next window: bob's KeyPackages can be claimed again.
    await new Promise((r) => setTimeout(r, refused.body.retry_after * 1000 + 100))
    assert.equal((await api.claim('bob')).status, 200)
    assert.equal((await api.count('bob')).total, 1)

    const metrics = await (await fetch(`${api.base}/metrics`)).text()
    assert.match(metrics, /^mlsds_key_package_claims_total\{outcome="rate_limited"\} 3$/m)
    assert.match(metrics, /^mlsds_requests_rejected_total\{door="rest",error="rate_limited"\} 2$/m)
    assert.match(metrics, /^mlsds_requests_rejected_total\{door="tcp",error="rate_limited"\} 1$/m)
  })

  test('beyond the limit, a client with no KeyPackages at all is still "none": 404 over REST, key_package null over TCP (LEGACY-TCP.md)', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await api.claim('nobody')).status, 404)
    const rest = await api.claim('nobody')
    assert.equal(rest.status, 404, JSON.stringify(rest.body))
    assert.equal(rest.body.error, 'key_package_not_found')
    assert.deepEqual(await tcpClaim('nobody'), { type: 'KeyPackageResponse', client_id: 'nobody', key_package: null })
  })

  test('beyond the limit a client with a last-resort KeyPackage still gets added: it is handed out, the one-time ones stay', async () => {
    const dave = await MlsTestClient.create('dave', 1)
    const oneTime = await Promise.all(Array.from({ length: 5 }, () => dave.createKeyPackage()))
    const lastResort = await dave.createKeyPackage({ lastResort: true })
    assert.equal((await api.putKeyPackages('dave', [...oneTime, lastResort].map((k) => k.bytes))).status, 200)
    for (let i = 0; i < 3; i++) assert.equal((await api.claim('dave')).body.last_resort, false, `one-time claim ${i + 1}`)
    for (let i = 0; i < 2; i++) {
      const over = await api.claim('dave')
      assert.equal(over.status, 200)
      assert.equal(over.body.last_resort, true)
      assert.equal(over.body.key_package_ref, lastResort.ref)
    }
    const overTcp = await tcpClaim('dave')
    assert.equal(overTcp.type, 'KeyPackageResponse')
    assert.deepEqual(Buffer.from(overTcp.key_package), Buffer.from(lastResort.bytes))
    const count = await api.count('dave')
    assert.deepEqual([count.total, count.last_resort], [3, 1], 'two one-time KeyPackages and the last-resort one are left')

    const metrics = await (await fetch(`${api.base}/metrics`)).text()
    assert.match(metrics, /^mlsds_key_package_claims_total\{outcome="last_resort_over_limit"\} 3$/m)
  })

  test('ids that are object keys elsewhere are counted like any other', async () => {
    for (const id of ['__proto__', 'constructor']) {
      const client = await MlsTestClient.create(id, 1)
      const pool = await Promise.all(Array.from({ length: 4 }, () => client.createKeyPackage()))
      assert.equal((await api.putKeyPackages(id, pool.map((k) => k.bytes))).status, 200, id)
      for (let i = 0; i < 3; i++) assert.equal((await api.claim(id)).status, 200, id)
      assert.equal((await api.claim(id)).status, 429, id)
      assert.equal((await api.count(id)).total, 1, id)
    }
  })
})
