import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { decodeMlsMessage, encodeMlsMessage, generateKeyPackage, defaultCapabilities, getCiphersuiteImpl, getCiphersuiteFromName } from 'ts-mls'
import { signKeyPackage } from 'ts-mls/keyPackage.js'
import { signLeafNodeKeyPackage } from 'ts-mls/leafNode.js'
import { inspectKeyPackage, MlsValidationError, type KeyPackagePolicy, type MlsCheck } from '../../src/mls/index.js'
import { MlsTestClient, suiteName } from '../helpers/mls-client.js'

const ALL = new Set([1, 2, 3, 4, 5, 6, 7, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88])
const policy = (over: Partial<KeyPackagePolicy> = {}): KeyPackagePolicy =>
  ({ allowedCiphersuites: ALL, maxLifetimeSeconds: 90 * 86400, now: new Date(), ...over })

async function rejects(bytes: Uint8Array, check: MlsCheck, p = policy()): Promise<MlsValidationError> {
  try {
    const r = await inspectKeyPackage(bytes, p)
    assert.fail(`expected ${check}, got ${JSON.stringify(r)}`)
  } catch (err) {
    assert.ok(err instanceof MlsValidationError, `expected MlsValidationError, got ${String(err)}`)
    assert.equal(err.check, check, err.message)
    return err
  }
}

const clients = new Map<number, Promise<MlsTestClient>>()
const client = (suite: number) => {
  let c = clients.get(suite)
  if (c === undefined) clients.set(suite, c = MlsTestClient.create(`client-${suite}`, suite))
  return c
}

for (const suite of [1, 2, 3, 4, 5, 6, 7, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88]) {
  test(`valid KeyPackage, suite ${suite}, both framings`, async () => {
    const c = await client(suite)
    for (const framing of ['mls-message', 'bare'] as const) {
      const kp = await c.createKeyPackage({ framing })
      const r = await inspectKeyPackage(kp.bytes, policy())
      assert.equal(r.kind, 'key-package')
      if (r.kind !== 'key-package') return
      assert.equal(r.ref, kp.ref)
      assert.equal(r.ciphersuite, suite)
      assert.equal(r.framing, framing)
      assert.equal(r.lastResort, false)
      assert.ok(r.notAfter - r.notBefore <= 7 * 86400 + 60)
    }
  })
}

test('bare and MLSMessage framings of one KeyPackage give the same ref', async () => {
  const c = await client(1)
  const kp = await c.createKeyPackage()
  const bare = await inspectKeyPackage(kp.bytes.subarray(4), policy())
  const framed = await inspectKeyPackage(kp.bytes, policy())
  assert.equal(bare.kind, 'key-package')
  assert.equal(framed.kind, 'key-package')
  if (bare.kind === 'key-package' && framed.kind === 'key-package') assert.equal(bare.ref, framed.ref)
})

test('last_resort extension is detected', async () => {
  const kp = await (await client(1)).createKeyPackage({ lastResort: true })
  const r = await inspectKeyPackage(kp.bytes, policy())
  assert.equal(r.kind === 'key-package' && r.lastResort, true)
})

test('non-MLS bytes are not-mls', async () => {
  const p = policy()
  const text = new TextEncoder().encode('base64_encoded_key_package_data_here')
  assert.deepEqual(await inspectKeyPackage(text, p), { kind: 'not-mls' })
  assert.deepEqual(await inspectKeyPackage(Buffer.from('base64_encoded_key_package_data_here', 'base64'), p), { kind: 'not-mls' })
  assert.deepEqual(await inspectKeyPackage(new TextEncoder().encode('{"key_package":"abc"}'), p), { kind: 'not-mls' })
  assert.deepEqual(await inspectKeyPackage(new Uint8Array(), p), { kind: 'not-mls' })
  assert.deepEqual(await inspectKeyPackage(new Uint8Array([0, 1, 0]), p), { kind: 'not-mls' })
  for (let i = 0; i < 200; i++) {
    const junk = randomBytes(1 + (i % 400))
    if (junk[0] === 0) junk[0] = 0xff
    assert.deepEqual(await inspectKeyPackage(junk, p), { kind: 'not-mls' })
  }
})

test('trailing bytes are rejected (both framings)', async () => {
  const kp = await (await client(1)).createKeyPackage()
  await rejects(Buffer.concat([kp.bytes, Buffer.from([0])]), 'trailing_bytes')
  await rejects(Buffer.concat([kp.bytes.subarray(4), Buffer.from('xyz')]), 'trailing_bytes')
})

test('truncated KeyPackages are malformed', async () => {
  const kp = await (await client(1)).createKeyPackage()
  for (const cut of [1, 10, 64, 100, kp.bytes.length - 8]) {
    await rejects(kp.bytes.subarray(0, kp.bytes.length - cut), 'malformed')
    await rejects(kp.bytes.subarray(4, kp.bytes.length - cut), 'malformed')
  }
  // fewer than 4 bytes carry no MLS header at all
  assert.deepEqual(await inspectKeyPackage(kp.bytes.subarray(0, 3), policy()), { kind: 'not-mls' })
})

test('tampered KeyPackage signature', async () => {
  const kp = await (await client(1)).createKeyPackage()
  const bad = Uint8Array.from(kp.bytes)
  bad[bad.length - 1]! ^= 1
  const err = await rejects(bad, 'signature')
  assert.equal(err.message, 'KeyPackage signature does not verify')
  // a change inside the signed content also breaks it
  const bad2 = Uint8Array.from(kp.bytes)
  bad2[20]! ^= 0x80
  await rejects(bad2, 'signature')
})

async function rawKeyPackage(suite: number, lifetime = { notBefore: 0n, notAfter: 2n ** 40n }) {
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName(suiteName(suite)))
  const { publicPackage, privatePackage } = await generateKeyPackage(
    { credentialType: 'basic', identity: new TextEncoder().encode('raw') }, defaultCapabilities(), lifetime, [], cs)
  return { cs, kp: publicPackage, sk: privatePackage.signaturePrivateKey }
}
const frame = (kp: Parameters<typeof signKeyPackage>[0] & { signature: Uint8Array }) =>
  encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp })

test('leaf node signature is checked separately', async () => {
  const { cs, kp, sk } = await rawKeyPackage(1)
  const leaf = { ...kp.leafNode, signature: Uint8Array.from(kp.leafNode.signature) }
  leaf.signature[0]! ^= 1
  const resigned = await signKeyPackage({ ...kp, leafNode: leaf }, sk, cs.signature)
  await rejects(frame(resigned), 'leaf_signature', policy({ maxLifetimeSeconds: 2 ** 41 }))
})

test('init_key equal to the encryption key is rejected', async () => {
  const { cs, kp, sk } = await rawKeyPackage(1)
  const resigned = await signKeyPackage({ ...kp, initKey: kp.leafNode.hpkePublicKey }, sk, cs.signature)
  await rejects(frame(resigned), 'init_key_reuse', policy({ maxLifetimeSeconds: 2 ** 41 }))
})

test('lifetime: expired, not yet valid, too long, clock skew', async () => {
  const c = await client(1)
  const now = Math.floor(Date.now() / 1000)
  const expired = await c.createKeyPackage({ lifetime: { notBefore: now - 7200, notAfter: now - 3600 } })
  await rejects(expired.bytes, 'expired')
  const future = await c.createKeyPackage({ lifetime: { notBefore: now + 3600, notAfter: now + 7200 } })
  await rejects(future.bytes, 'not_yet_valid')
  const r = await inspectKeyPackage(future.bytes, policy({ clockSkewSeconds: 3600 }))
  assert.equal(r.kind, 'key-package')
  const long = await c.createKeyPackage({ lifetime: { notBefore: now - 60, notAfter: now + 365 * 86400 } })
  await rejects(long.bytes, 'lifetime_too_long')
  const forever = await c.createKeyPackage({ lifetime: { notBefore: 0n, notAfter: 2n ** 63n - 1n } })
  await rejects(forever.bytes, 'lifetime_too_long')
  const ok = await inspectKeyPackage(long.bytes, policy({ maxLifetimeSeconds: 366 * 86400 }))
  assert.equal(ok.kind === 'key-package' && ok.notBefore, now - 60)
})

test('cipher suite not in the allow-list, or unknown', async () => {
  const kp = await (await client(3)).createKeyPackage()
  const err = await rejects(kp.bytes, 'ciphersuite_not_allowed', policy({ allowedCiphersuites: new Set([1]) }))
  assert.match(err.message, /cipher suite 3 /)
  const unknown = Uint8Array.from(kp.bytes)
  unknown[6] = 0x12
  unknown[7] = 0x34 // inner KeyPackage cipher_suite = 0x1234
  await rejects(unknown, 'ciphersuite_unknown')
})

test('protocol version other than mls10', async () => {
  const kp = await (await client(1)).createKeyPackage()
  const outer = Uint8Array.from(kp.bytes)
  outer[1] = 2
  await rejects(outer, 'version')
  const inner = Uint8Array.from(kp.bytes)
  inner[5] = 2
  await rejects(inner, 'version')
  await rejects(inner.subarray(4), 'version')
})

test('non-minimal length encoding is rejected', async () => {
  const kp = await (await client(1)).createKeyPackage()
  const b = kp.bytes
  // the Ed25519 signature<V> (64 bytes) is last, with the 2-byte length 0x40 0x40
  assert.deepEqual([...b.subarray(b.length - 66, b.length - 64)], [0x40, 0x40])
  const padded = Buffer.concat([b.subarray(0, b.length - 66), Buffer.from([0x80, 0, 0, 0x40]), b.subarray(b.length - 64)])
  assert.ok(decodeMlsMessage(padded, 0)) // ts-mls itself accepts it
  await rejects(padded, 'non_canonical')
})

test('custom credential type is a credential error, not a crash', async () => {
  const kp = await (await client(1)).createKeyPackage({ customCredentialType: 0xf001 })
  assert.throws(() => decodeMlsMessage(kp.bytes, 0), TypeError) // the ts-mls pitfall
  const err = await rejects(kp.bytes, 'credential')
  assert.match(err.message, /61441/)
  await rejects(kp.bytes.subarray(4), 'credential')
})

test('another MLS message where a KeyPackage is expected', async () => {
  const alice = await MlsTestClient.create('alice')
  await alice.createGroup('kp-test')
  const msg = await alice.sendApplication('hi')
  await rejects(msg, 'not_a_key_package')
})

test('mutated KeyPackages never crash: not-mls or MlsValidationError only', async () => {
  const kp = await (await client(1)).createKeyPackage()
  for (let i = 0; i < 500; i++) {
    const m = Uint8Array.from(i % 2 === 0 ? kp.bytes : kp.bytes.subarray(4))
    const pos = (i * 7919) % m.length
    m[pos] = (m[pos]! + 1 + (i % 255)) & 0xff
    try {
      await inspectKeyPackage(m, policy())
    } catch (err) {
      assert.ok(err instanceof MlsValidationError, `mutation at ${pos}: ${String(err)}`)
    }
  }
})
