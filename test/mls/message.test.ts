import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { decodeMlsMessage } from 'ts-mls'
import { inspectKeyPackage, inspectMessage, MlsValidationError, type MlsCheck } from '../../src/mls/index.js'
import { MlsTestClient } from '../helpers/mls-client.js'

const utf8 = (s: string) => new TextEncoder().encode(s)

function throwsCheck(fn: () => unknown, check: MlsCheck): void {
  assert.throws(fn, (err: unknown) => err instanceof MlsValidationError && err.check === check)
}

async function groupOfTwo(suite = 1) {
  const alice = await MlsTestClient.create('alice', suite)
  const bob = await MlsTestClient.create('bob', suite)
  await alice.createGroup('room-1')
  const bobKp = await bob.createKeyPackage()
  const add = await alice.addMembers([bobKp.bytes])
  await bob.joinFromWelcome(add.welcome!, add.ratchetTree)
  return { alice, bob, bobKp, add }
}

test('PrivateMessage commit, Welcome and GroupInfo of an Add', async () => {
  const { add, bobKp } = await groupOfTwo()
  assert.deepEqual(inspectMessage(add.commit), {
    kind: 'group-message', wireFormat: 'private', groupId: utf8('room-1'), epoch: 0n, contentType: 'commit', externalCommit: false,
  })
  assert.deepEqual(inspectMessage(add.welcome!), { kind: 'welcome', ciphersuite: 1, newMembers: [bobKp.ref] })
  assert.deepEqual(inspectMessage(add.groupInfo), { kind: 'group-info', groupId: utf8('room-1'), epoch: 1n, ciphersuite: 1 })
})

test('Welcome newMembers are the refs of every added KeyPackage (X-Wing suite)', async () => {
  const alice = await MlsTestClient.create('alice', 83)
  await alice.createGroup('pq-room')
  const kps = await Promise.all(['bob', 'carol', 'dave'].map(async (n) => (await MlsTestClient.create(n, 83)).createKeyPackage()))
  const add = await alice.addMembers(kps.map((k) => k.bytes))
  const w = inspectMessage(add.welcome!)
  assert.equal(w.kind, 'welcome')
  if (w.kind !== 'welcome') return
  assert.equal(w.ciphersuite, 83)
  assert.deepEqual([...w.newMembers].sort(), kps.map((k) => k.ref).sort())
  // the refs the DS computed at upload time match the Welcome
  for (const kp of kps) {
    const r = await inspectKeyPackage(kp.bytes, { allowedCiphersuites: new Set([83]), maxLifetimeSeconds: 30 * 86400, now: new Date() })
    assert.ok(r.kind === 'key-package' && w.newMembers.includes(r.ref))
  }
})

test('application PrivateMessage and PublicMessage commit', async () => {
  const { alice, bob } = await groupOfTwo()
  const app = await alice.sendApplication('hello bob')
  assert.deepEqual(inspectMessage(app), {
    kind: 'group-message', wireFormat: 'private', groupId: utf8('room-1'), epoch: 1n, contentType: 'application', externalCommit: false,
  })
  assert.equal((await bob.receive(app)).kind, 'application')
  const upd = await bob.selfUpdate({ publicMessage: true })
  assert.deepEqual(inspectMessage(upd.commit), {
    kind: 'group-message', wireFormat: 'public', groupId: utf8('room-1'), epoch: 1n, contentType: 'commit', externalCommit: false,
  })
  // RFC 9420 §12.4.3.2: a commit by a joiner (sender new_member_commit) is told apart.
  const carol = await MlsTestClient.create('carol')
  const join = await carol.joinExternal(upd.groupInfo, upd.ratchetTree)
  assert.deepEqual(inspectMessage(join.commit), {
    kind: 'group-message', wireFormat: 'public', groupId: utf8('room-1'), epoch: 2n, contentType: 'commit', externalCommit: true,
  })
})

test('hand-read PrivateMessage header agrees with ts-mls, groupId is a view', async () => {
  const { alice } = await groupOfTwo()
  const app = await alice.sendApplication(randomBytes(1000))
  const r = inspectMessage(app)
  const m = decodeMlsMessage(app, 0)![0]
  assert.ok(m.wireformat === 'mls_private_message' && r.kind === 'group-message')
  assert.deepEqual(r.groupId, m.privateMessage.groupId)
  assert.equal(r.epoch, m.privateMessage.epoch)
  assert.equal(r.groupId.buffer, app.buffer)
})

test('KeyPackage MLSMessage is a key-package', async () => {
  const kp = await (await MlsTestClient.create('x')).createKeyPackage()
  assert.deepEqual(inspectMessage(kp.bytes), { kind: 'key-package' })
})

test('not-mls inputs', () => {
  for (const s of ['base64_encoded_key_package_data_here', 'hello', '{"a":1}', '']) {
    assert.deepEqual(inspectMessage(utf8(s)), { kind: 'not-mls' })
  }
  assert.deepEqual(inspectMessage(new Uint8Array([0, 1, 0, 9, 1, 2])), { kind: 'not-mls' }) // unknown wire format
  assert.deepEqual(inspectMessage(new Uint8Array([0, 2, 0, 2, 1, 2])), { kind: 'not-mls' }) // version 2
  for (let i = 0; i < 200; i++) {
    const junk = randomBytes(1 + i * 5)
    if (junk[0] === 0) junk[0] = 1
    assert.deepEqual(inspectMessage(junk), { kind: 'not-mls' })
  }
})

test('trailing and truncated bytes after a valid header', async () => {
  const { alice, add } = await groupOfTwo()
  const app = await alice.sendApplication('x')
  for (const msg of [app, add.commit, add.welcome!, add.groupInfo]) {
    throwsCheck(() => inspectMessage(Buffer.concat([msg, Buffer.from([0])])), 'trailing_bytes')
    throwsCheck(() => inspectMessage(msg.subarray(0, msg.length - 1)), 'malformed')
    throwsCheck(() => inspectMessage(msg.subarray(0, 4)), 'malformed')
  }
  const badContentType = Uint8Array.from(app)
  badContentType[4 + 1 + 'room-1'.length + 8] = 9
  throwsCheck(() => inspectMessage(badContentType), 'malformed')
})

test('mutated messages never crash: result or MlsValidationError only', async () => {
  const { alice, bob, add } = await groupOfTwo()
  const upd = await bob.selfUpdate({ publicMessage: true })
  const samples = [await alice.sendApplication('abc'), add.welcome!, add.groupInfo, upd.commit]
  for (const [k, msg] of samples.entries()) {
    for (let i = 0; i < 300; i++) {
      const m = Uint8Array.from(msg)
      const pos = 4 + ((i * 7919 + k) % (m.length - 4))
      m[pos] = (m[pos]! + 1 + i) & 0xff
      try { inspectMessage(m) } catch (err) { assert.ok(err instanceof MlsValidationError, String(err)) }
    }
  }
})
