import { test } from 'node:test'
import assert from 'node:assert/strict'
import { inspectMessage } from '../../src/mls/index.js'
import { MlsTestClient } from '../helpers/mls-client.js'

/** A toy in-order relay: every member receives every message except its own. */
async function deliver(from: MlsTestClient, msg: Uint8Array, members: MlsTestClient[]) {
  const out = []
  for (const m of members) if (m !== from && m.inGroup) out.push(await m.receive(msg))
  return out
}

async function sameEpoch(members: MlsTestClient[]) {
  const [first, ...rest] = members
  const auth = Buffer.from(first!.epochAuthenticator()).toString('hex')
  const exp = Buffer.from(await first!.exportSecret('ds-test')).toString('hex')
  for (const m of rest) {
    assert.equal(m.epoch, first!.epoch, `${m.name} epoch`)
    assert.equal(Buffer.from(m.epochAuthenticator()).toString('hex'), auth, `${m.name} epoch authenticator`)
    assert.equal(Buffer.from(await m.exportSecret('ds-test')).toString('hex'), exp, `${m.name} exporter`)
  }
}

for (const suite of [1, 3, 83, 85]) {
  test(`three members talk, update, remove (suite ${suite})`, async () => {
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((n) => MlsTestClient.create(n, suite)))
    const all = [alice!, bob!, carol!]
    await alice!.createGroup('team')
    assert.equal(alice!.groupId, 'team')

    const add = await alice!.addMembers([(await bob!.createKeyPackage()).bytes, (await carol!.createKeyPackage({ lastResort: true })).bytes])
    assert.equal(add.epoch, 0n)
    assert.equal(add.newEpoch, 1n)
    await bob!.joinFromWelcome(add.welcome!, add.ratchetTree)
    await carol!.joinFromWelcome(add.welcome!, add.ratchetTree)
    await sameEpoch(all)
    assert.deepEqual(alice!.members(), ['alice', 'bob', 'carol'])

    const hi = await bob!.sendApplication('hi all')
    const got = await deliver(bob!, hi, all)
    assert.deepEqual(got.map((r) => r.kind === 'application' && r.text), ['hi all', 'hi all'])

    const upd = await carol!.selfUpdate()
    assert.equal(inspectMessage(upd.commit).kind, 'group-message')
    await deliver(carol!, upd.commit, all)
    await sameEpoch(all)

    const rm = await alice!.removeMember('bob', { publicMessage: true })
    await deliver(alice!, rm.commit, all.filter((m) => m !== bob))
    await sameEpoch([alice!, carol!])
    assert.deepEqual(alice!.members(), ['alice', 'carol'])
    assert.equal(alice!.epoch, 3n)
  })
}

test('Welcome with the tree inside (ratchet_tree extension)', async () => {
  const alice = await MlsTestClient.create('alice')
  const bob = await MlsTestClient.create('bob')
  await alice.createGroup('tree-in-welcome')
  const add = await alice.addMembers([(await bob.createKeyPackage()).bytes], { ratchetTreeExtension: true })
  await bob.joinFromWelcome(add.welcome!)
  await sameEpoch([alice, bob])
})

test('two commits for one epoch: the loser rolls back and catches up', async () => {
  const alice = await MlsTestClient.create('alice')
  const bob = await MlsTestClient.create('bob')
  await alice.createGroup('race')
  const add = await alice.addMembers([(await bob.createKeyPackage()).bytes])
  await bob.joinFromWelcome(add.welcome!, add.ratchetTree)

  const a = await alice.selfUpdate()
  const b = await bob.selfUpdate()
  const ia = inspectMessage(a.commit)
  const ib = inspectMessage(b.commit)
  assert.ok(ia.kind === 'group-message' && ib.kind === 'group-message')
  assert.equal(ia.epoch, ib.epoch) // the DS accepts only the first of these
  bob.rollback()
  assert.equal(bob.epoch, 1n)
  await bob.receive(a.commit)
  await sameEpoch([alice, bob])
})
