import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { b64, RestApi, unb64, type Reply } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'

/**
 * KeyPackage intake and hand-out over real HTTP (RFC 9420 §10, §16.8; RFC 9750 §5.1):
 * every bad upload is a 400 naming the failed check and stores nothing; a claim hands out
 * one KeyPackage exactly once, as uploaded.
 */

const nowSeconds = () => Math.floor(Date.now() / 1000)
/** Deterministic bytes that are not MLS (they do not start with version 0x0001). */
const NOT_MLS = Uint8Array.from({ length: 96 }, (_, i) => (i * 151 + 7) % 256)
const PLACEHOLDER = new TextEncoder().encode('base64_encoded_key_package_data_here')

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[index < 0 ? copy.length + index : index]! ^= 0x01
  return copy
}

function withSuiteId(kp: Uint8Array, id: number): Uint8Array {
  // MLSMessage framing: version (2), wire_format (2), then the KeyPackage: version (2), cipher_suite (2).
  const copy = Uint8Array.from(kp)
  copy[6] = id >> 8
  copy[7] = id & 0xff
  return copy
}

function assertRejected(reply: Reply, check: string, label: string): void {
  assert.equal(reply.status, 400, `${label}: ${JSON.stringify(reply.body)}`)
  assert.equal(reply.body.error, 'invalid_key_package', label)
  assert.equal(reply.body.check, check, label)
  assert.equal(typeof reply.body.message, 'string', label)
}

describe('MLS KeyPackages over REST (strict)', () => {
  let running: RunningService
  let api: RestApi
  let alice: MlsTestClient
  before(async () => {
    // 50 parallel claims of one pool below: the claim limit is tested on its own (test/server/claim-limit.test.ts).
    running = await startTestService({ keyPackageClaimLimit: null })
    api = new RestApi(running.httpPort)
    alice = await MlsTestClient.create('alice', 1)
  })
  after(() => running.close())

  test('each bad KeyPackage is a 400 with its check, and nothing is stored', async () => {
    const good = (await alice.createKeyPackage()).bytes
    const now = nowSeconds()
    const bob = await MlsTestClient.create('bob', 1)
    await bob.createGroup('kp-tests')
    const add = await bob.addMembers([(await alice.createKeyPackage()).bytes])
    const version2 = Uint8Array.from(good)
    version2[5] = 2 // the KeyPackage's own ProtocolVersion, after the MLSMessage header
    const cases: [string, Uint8Array, string][] = [
      ['truncated', good.subarray(0, good.length - 10), 'malformed'],
      ['truncated to its header', good.subarray(0, 12), 'malformed'],
      ['trailing bytes', Buffer.concat([good, Buffer.from([0])]), 'trailing_bytes'],
      ['random bytes', NOT_MLS, 'not_mls'],
      ['placeholder text', PLACEHOLDER, 'not_mls'],
      ['tampered signature', flip(good, -1), 'signature'],
      ['expired', (await alice.createKeyPackage({ lifetime: { notBefore: now - 3600, notAfter: now - 60 } })).bytes, 'expired'],
      ['not yet valid', (await alice.createKeyPackage({ lifetime: { notBefore: now + 3600, notAfter: now + 7200 } })).bytes, 'not_yet_valid'],
      ['custom credential type', (await alice.createKeyPackage({ customCredentialType: 0xf000 })).bytes, 'credential'],
      ['unknown ciphersuite id', withSuiteId(good, 0x1234), 'ciphersuite_unknown'],
      ['protocol version 2', version2, 'version'],
      ['a Welcome', add.welcome!, 'not_a_key_package'],
      ['a GroupInfo', add.groupInfo, 'not_a_key_package'],
    ]
    for (const [label, bytes, check] of cases) {
      const client = `bad-${label.replaceAll(' ', '-')}`
      assertRejected(await api.call('PUT', `/key-packages/${client}`, { key_package: b64(bytes) }), check, label)
      assertRejected(await api.call('PUT', `/key-packages/${client}`, bytes, { 'content-type': 'message/mls' }), check, `${label} (raw)`)
      assert.equal((await api.count(client)).total, 0, label)
      assert.equal((await api.claim(client)).status, 404, label)
    }
  })

  test('a batch with one bad KeyPackage stores none of them', async () => {
    const good = await Promise.all([1, 2, 3].map(() => alice.createKeyPackage()))
    const batch = [good[0]!.bytes, good[1]!.bytes, flip(good[2]!.bytes, -1)]
    const reply = await api.putKeyPackages('batch', batch)
    assertRejected(reply, 'signature', 'batch')
    assert.match(reply.body.message, /key_packages\[2\]/)
    assert.deepEqual(await api.count('batch'), { client_id: 'batch', total: 0, by_ciphersuite: {}, last_resort: 0, legacy: 0 })
    assert.equal((await api.claim('batch')).status, 404)
  })

  test('a claim returns exactly the uploaded bytes, bare or MLSMessage-framed, and its ref', async () => {
    for (const framing of ['bare', 'mls-message'] as const) {
      const kp = await alice.createKeyPackage({ framing })
      const client = `exact-${framing}`
      const raw = framing === 'bare'
      const put = raw
        ? await api.call('PUT', `/key-packages/${client}`, kp.bytes, { 'content-type': 'message/mls' })
        : await api.call('PUT', `/key-packages/${client}`, { key_package: b64(kp.bytes) })
      assert.deepEqual(put.body, { client_id: client, stored: 1, available: 1 }, framing)
      const claim = await api.claim(client)
      assert.equal(claim.status, 200, framing)
      assert.deepEqual(claim.body, { client_id: client, key_package: b64(kp.bytes), key_package_ref: kp.ref, ciphersuite: 1, last_resort: false })
      assert.deepEqual(unb64(claim.body.key_package), kp.bytes, framing)
      const gone = await api.claim(client)
      assert.equal(gone.status, 404, framing)
      assert.equal(gone.body.error, 'key_package_not_found')
    }
  })

  test('?ciphersuite= picks the suite; an unknown suite id is a 400', async () => {
    const chacha = await MlsTestClient.create('multi', 3)
    const one = await alice.createKeyPackage()
    const three = await chacha.createKeyPackage()
    await api.putKeyPackages('multi', [one.bytes, three.bytes])
    assert.deepEqual((await api.count('multi')).by_ciphersuite, { 1: 1, 3: 1 })
    const reply = await api.claim('multi', 3)
    assert.equal(reply.status, 200)
    assert.equal(reply.body.ciphersuite, 3)
    assert.equal(reply.body.key_package_ref, three.ref)
    assert.equal((await api.claim('multi', 3)).status, 404)
    assert.equal((await api.claim('multi', 2)).status, 404)
    const unknown = await api.claim('multi', 4660)
    assert.equal(unknown.status, 400)
    assert.equal(unknown.body.error, 'bad_request')
    assert.equal((await api.claim('multi', 1)).body.key_package_ref, one.ref)
  })

  test('a last-resort KeyPackage is handed out only when no other is left, and kept', async () => {
    const lastResort = await alice.createKeyPackage({ lastResort: true })
    const regular = [await alice.createKeyPackage(), await alice.createKeyPackage()]
    await api.putKeyPackages('lr', [lastResort.bytes, ...regular.map((k) => k.bytes)])
    assert.deepEqual(await api.count('lr'), { client_id: 'lr', total: 3, by_ciphersuite: { 1: 3 }, last_resort: 1, legacy: 0 })
    const refs = []
    for (let i = 0; i < 5; i++) {
      const reply = await api.claim('lr')
      assert.equal(reply.status, 200)
      refs.push(reply.body.key_package_ref)
      assert.equal(reply.body.last_resort, i >= 2)
    }
    assert.deepEqual(refs, [regular[0]!.ref, regular[1]!.ref, lastResort.ref, lastResort.ref, lastResort.ref])
    assert.deepEqual(await api.count('lr'), { client_id: 'lr', total: 1, by_ciphersuite: { 1: 1 }, last_resort: 1, legacy: 0 })
  })

  test('50 parallel claims of a pool of 10: 10 distinct KeyPackages, 40 × 404', async () => {
    const pool = await Promise.all(Array.from({ length: 10 }, () => alice.createKeyPackage()))
    assert.equal((await api.putKeyPackages('pool', pool.map((k) => k.bytes))).body.available, 10)
    const replies = await Promise.all(Array.from({ length: 50 }, () => api.claim('pool')))
    const won = replies.filter((r) => r.status === 200)
    assert.equal(won.length, 10)
    assert.equal(replies.filter((r) => r.status === 404).length, 40)
    assert.deepEqual(new Set(won.map((r) => r.body.key_package_ref)), new Set(pool.map((k) => k.ref)))
    assert.equal((await api.count('pool')).total, 0)
  })

  test('an expired KeyPackage is never handed out and not counted', async () => {
    const now = nowSeconds()
    const shortLived = await alice.createKeyPackage({ lifetime: { notBefore: now - 60, notAfter: now + 2 } })
    const longLived = await alice.createKeyPackage()
    // The short-lived one is older, so it would be handed out first while valid.
    assert.equal((await api.putKeyPackages('expiry', [shortLived.bytes, longLived.bytes])).body.available, 2)
    while (nowSeconds() <= now + 2) await sleep(250)
    assert.equal((await api.count('expiry')).total, 1)
    assert.deepEqual((await api.count('expiry')).by_ciphersuite, { 1: 1 })
    assert.equal((await api.claim('expiry')).body.key_package_ref, longLived.ref)
    assert.equal((await api.claim('expiry')).status, 404)
    assert.equal((await api.count('expiry')).total, 0)
    assert.ok(!(await api.call('GET', '/key-packages')).body.clients.includes('expiry'))
  })

  test('count and DELETE by ref', async () => {
    const kps = [await alice.createKeyPackage(), await alice.createKeyPackage()]
    await api.putKeyPackages('del', kps.map((k) => k.bytes))
    assert.equal((await api.call('DELETE', `/key-packages/del/${kps[0]!.ref}`)).status, 204)
    assert.equal((await api.call('DELETE', `/key-packages/del/${kps[0]!.ref}`)).status, 404)
    assert.equal((await api.call('DELETE', `/key-packages/other/${kps[1]!.ref}`)).status, 404)
    assert.equal((await api.count('del')).total, 1)
    assert.equal((await api.call('DELETE', `/key-packages/del/${kps[1]!.ref.toUpperCase()}`)).status, 204)
    assert.equal((await api.count('del')).total, 0)
    assert.equal((await api.claim('del')).status, 404)
  })
})

describe('MLS KeyPackages over REST: policy settings', () => {
  test('a lifetime longer than KEY_PACKAGE_MAX_LIFETIME is refused', async () => {
    const running = await startTestService({ keyPackageMaxLifetimeSeconds: 3600 })
    try {
      const api = new RestApi(running.httpPort)
      const client = await MlsTestClient.create('life', 1)
      const now = nowSeconds()
      assertRejected(await api.putKeyPackages('life', [(await client.createKeyPackage()).bytes]), 'lifetime_too_long', 'a week')
      const hour = await client.createKeyPackage({ lifetime: { notBefore: now - 60, notAfter: now + 3000 } })
      assert.equal((await api.putKeyPackages('life', [hour.bytes])).status, 200)
      assert.equal((await api.count('life')).total, 1)
    } finally {
      await running.close()
    }
  })

  test('a ciphersuite outside MLS_CIPHERSUITES is refused', async () => {
    const running = await startTestService({ mlsCiphersuites: new Set([1]) })
    try {
      const api = new RestApi(running.httpPort)
      const chacha = await MlsTestClient.create('chacha', 3)
      assertRejected(await api.putKeyPackages('chacha', [(await chacha.createKeyPackage()).bytes]), 'ciphersuite_not_allowed', 'suite 3')
      assert.equal((await api.count('chacha')).total, 0)
      const ok = await MlsTestClient.create('one', 1)
      assert.equal((await api.putKeyPackages('one', [(await ok.createKeyPackage()).bytes])).status, 200)
    } finally {
      await running.close()
    }
  })

  test('permissive: non-MLS bytes are one legacy KeyPackage (replaced, not consumed); bad MLS is still refused', async () => {
    const running = await startTestService({ mlsValidation: 'permissive' })
    try {
      const api = new RestApi(running.httpPort)
      const put = await api.putKeyPackages('legacy', [PLACEHOLDER])
      assert.deepEqual(put.body, { client_id: 'legacy', stored: 1, available: 1 })
      assert.equal((await api.putKeyPackages('legacy', [NOT_MLS])).body.available, 1, 'the second replaces the first')
      assert.deepEqual(await api.count('legacy'), { client_id: 'legacy', total: 1, by_ciphersuite: {}, last_resort: 0, legacy: 1 })
      for (let i = 0; i < 3; i++) {
        const claim = await api.claim('legacy')
        assert.equal(claim.status, 200)
        assert.deepEqual(unb64(claim.body.key_package), NOT_MLS)
        assert.equal(claim.body.ciphersuite, null)
      }
      assert.equal((await api.claim('legacy', 1)).status, 404, 'legacy bytes have no ciphersuite')

      const client = await MlsTestClient.create('mixed', 1)
      const good = await client.createKeyPackage()
      assertRejected(await api.putKeyPackages('mixed', [good.bytes.subarray(0, 40)]), 'malformed', 'truncated')
      assertRejected(await api.putKeyPackages('mixed', [flip(good.bytes, -1)]), 'signature', 'tampered')
      assert.equal((await api.count('mixed')).total, 0)
      // A real KeyPackage goes before the legacy one.
      await api.putKeyPackages('mixed', [PLACEHOLDER, good.bytes])
      assert.equal((await api.claim('mixed')).body.key_package_ref, good.ref)
      assert.deepEqual(unb64((await api.claim('mixed')).body.key_package), PLACEHOLDER)
    } finally {
      await running.close()
    }
  })
})
