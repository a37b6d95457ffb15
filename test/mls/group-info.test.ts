import { test } from 'node:test'
import assert from 'node:assert/strict'
import { inspectGroupInfo, MlsValidationError, type MlsCheck } from '../../src/mls/index.js'
import { MlsTestClient } from '../helpers/mls-client.js'

const utf8 = (s: string) => new TextEncoder().encode(s)

async function rejects(p: Promise<unknown>, check: MlsCheck): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MlsValidationError, String(err))
    assert.equal(err.check, check, err.message)
    return true
  })
}

async function setup(suite: number, groupInfoWithRatchetTree = false) {
  const alice = await MlsTestClient.create('alice', suite)
  const bob = await MlsTestClient.create('bob', suite)
  await alice.createGroup(`gi-${suite}`)
  return alice.addMembers([(await bob.createKeyPackage()).bytes], { groupInfoWithRatchetTree })
}

for (const suite of [1, 4, 87]) {
  test(`GroupInfo signature verifies with a separate ratchet tree, suite ${suite}`, async () => {
    const add = await setup(suite)
    const r = await inspectGroupInfo(add.groupInfo, add.ratchetTree)
    assert.deepEqual(r, {
      groupId: utf8(`gi-${suite}`), epoch: 1n, ciphersuite: suite, framing: 'mls-message',
      signer: 0, signatureVerified: true, ratchetTreeSource: 'argument',
    })
    // bare GroupInfo too (suite 4 bare starts 0001 0004, like a framed GroupInfo)
    const bare = await inspectGroupInfo(add.groupInfo.subarray(4), add.ratchetTree)
    assert.equal(bare.framing, 'bare')
    assert.equal(bare.signatureVerified, true)
  })
}

test('GroupInfo with the ratchet_tree extension verifies without a separate tree', async () => {
  const add = await setup(1, true)
  const r = await inspectGroupInfo(add.groupInfo)
  assert.equal(r.signatureVerified, true)
  assert.equal(r.ratchetTreeSource, 'extension')
})

test('GroupInfo without any tree is decoded but not verified', async () => {
  const add = await setup(1)
  const r = await inspectGroupInfo(add.groupInfo)
  assert.equal(r.signatureVerified, false)
  assert.equal(r.ratchetTreeSource, null)
  assert.equal(r.epoch, 1n)
})

test('tampered GroupInfo signature, wrong tree, bad tree bytes', async () => {
  const add = await setup(1)
  const bad = Uint8Array.from(add.groupInfo)
  bad[bad.length - 1]! ^= 1
  await rejects(inspectGroupInfo(bad, add.ratchetTree), 'group_info_signature')
  const other = await setup(1)
  await rejects(inspectGroupInfo(add.groupInfo, other.ratchetTree), 'ratchet_tree')
  await rejects(inspectGroupInfo(add.groupInfo, add.ratchetTree.subarray(0, 20)), 'ratchet_tree')
  await rejects(inspectGroupInfo(add.groupInfo, Buffer.concat([add.ratchetTree, Buffer.from([0])])), 'ratchet_tree')
})

test('GroupInfo decoding errors', async () => {
  const add = await setup(1)
  await rejects(inspectGroupInfo(utf8('base64_encoded_group_info')), 'malformed')
  await rejects(inspectGroupInfo(Buffer.concat([add.groupInfo, Buffer.from([1])])), 'trailing_bytes')
  await rejects(inspectGroupInfo(add.groupInfo.subarray(0, 50)), 'malformed')
  await rejects(inspectGroupInfo(add.commit), 'not_a_group_info')
})
