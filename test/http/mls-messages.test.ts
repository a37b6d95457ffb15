import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { hex, MlsTestClient } from '../helpers/mls-client.js'
import { b64, RestMember, type Reply } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'

/**
 * Relay and commit rules over real HTTP with real MLS bytes: the DS reads only the clear
 * header (RFC 9420 §6), keeps one Commit per epoch (RFC 9750 §5.2.1), and routes a Welcome
 * only with its accepted Commit (RFC 9420 §14).
 */

const NOT_MLS = Uint8Array.from({ length: 80 }, (_, i) => (i * 151 + 7) % 256)

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = Uint8Array.from(bytes)
  copy[index < 0 ? copy.length + index : index]! ^= 0x01
  return copy
}

function assertInvalid(reply: Reply, check: string, label = check): void {
  assert.equal(reply.status, 400, `${label}: ${JSON.stringify(reply.body)}`)
  assert.equal(reply.body.error, 'invalid_message', label)
  assert.equal(reply.body.check, check, label)
}

describe('MLS messages over REST (strict)', () => {
  const service = useTestService()

  /** Alice alone in a new group, in MLS and at the DS. */
  async function newGroup(group: string, dsEpoch?: number): Promise<RestMember> {
    const alice = new RestMember(await MlsTestClient.create('alice', 1), service.api, group)
    await alice.client.createGroup(group)
    assert.equal((await service.api.createGroup(group, 'alice', dsEpoch)).status, 201)
    return alice
  }

  /** A client with one KeyPackage uploaded to the DS; returns it and the claimed bytes. */
  async function claimable(name: string, group: string): Promise<{ member: RestMember; keyPackage: Uint8Array }> {
    const member = new RestMember(await MlsTestClient.create(name, 1), service.api, group)
    assert.equal((await service.api.putKeyPackages(name, [(await member.client.createKeyPackage()).bytes])).status, 200)
    return { member, keyPackage: await service.api.claimBytes(name) }
  }

  test('an Idempotency-Key used again for a Commit is a 422, not the earlier message\'s answer: the group stays at its epoch', async () => {
    const alice = await newGroup('reuse')
    const app = b64(await alice.client.sendApplication('hello'))
    const key = { 'idempotency-key': 'k-1' }
    assert.equal((await service.api.call('POST', '/groups/reuse/messages', { sender_id: 'alice', message: app }, key)).status, 201)
    const bundle = await alice.client.selfUpdate()
    const body = { sender_id: 'alice', commit: b64(bundle.commit), group_info: b64(bundle.groupInfo), ratchet_tree: b64(bundle.ratchetTree) }
    const reused = await service.api.call('POST', '/groups/reuse/commits', body, key)
    assert.equal(reused.status, 422, JSON.stringify(reused.body))
    assert.equal(reused.body.error, 'idempotency_key_reused')
    assert.equal(reused.body.seq, 1)
    assert.equal((await service.api.call('GET', '/groups/reuse')).body.epoch, 0)
    assert.equal((await service.api.call('GET', '/groups/reuse/group-info')).status, 404)
    // The real retry is still one; the Commit under a key of its own is accepted.
    const retried = await service.api.call('POST', '/groups/reuse/messages', { sender_id: 'alice', message: app }, key)
    assert.deepEqual([retried.status, retried.body.seq], [201, 1])
    const accepted = await service.api.call('POST', '/groups/reuse/commits', body, { 'idempotency-key': 'k-2' })
    assert.deepEqual([accepted.status, accepted.body.seq, accepted.body.epoch], [201, 2, 1])
  })

  test('truncated, padded or random bytes are a 400 (never a 500) and store nothing', async () => {
    const alice = await newGroup('fuzz')
    const app = await alice.client.sendApplication('hello')
    const commit = await alice.client.selfUpdate({ publicMessage: true })
    alice.client.rollback()
    const privateCommit = await alice.client.selfUpdate()
    alice.client.rollback()
    const { keyPackage } = await claimable('fuzz-bob', 'fuzz')
    const welcome = (await alice.client.addMembers([keyPackage])).welcome!
    alice.client.rollback()

    for (const [label, bytes] of [['application', app], ['public commit', commit.commit], ['private commit', privateCommit.commit], ['welcome', welcome]] as const) {
      for (let start = 1; start < bytes.length; start += 50) {
        const lengths = Array.from({ length: Math.min(50, bytes.length - start) }, (_, i) => start + i)
        const replies = await Promise.all(lengths.map((n) => service.api.send('fuzz', 'alice', bytes.subarray(0, n))))
        for (const [i, reply] of replies.entries()) {
          assertInvalid(reply, lengths[i]! < 4 ? 'not_mls' : 'malformed', `${label} cut to ${lengths[i]} bytes`)
        }
      }
      assertInvalid(await service.api.send('fuzz', 'alice', Buffer.concat([bytes, Buffer.from([0])])), 'trailing_bytes', `${label} + 1 byte`)
    }
    assertInvalid(await service.api.send('fuzz', 'alice', NOT_MLS), 'not_mls')
    assertInvalid(await service.api.send('fuzz', 'alice', NOT_MLS, 'Application'), 'not_mls', 'declared but not MLS')
    for (const n of [1, 5, 40, commit.commit.length - 1]) {
      assertInvalid(await service.api.commit('fuzz', 'alice', { ...commit, commit: commit.commit.subarray(0, n) }), n < 4 ? 'not_mls' : 'malformed', `commit cut to ${n}`)
    }
    assertInvalid(await service.api.commit('fuzz', 'alice', commit, { group_info: commit.groupInfo.subarray(0, 50) }), 'malformed', 'group_info cut')
    assertInvalid(await service.api.commit('fuzz', 'alice', commit, { ratchet_tree: NOT_MLS }), 'ratchet_tree', 'ratchet_tree not a tree')
    assert.deepEqual(await service.api.messages('fuzz'), [])
    assert.equal((await service.api.group('fuzz')).epoch, 0)

    // Every single-bit change of a PublicMessage commit: whatever the DS makes of it, no 5xx.
    const flipper = await newGroup('flips')
    const flips = await flipper.client.selfUpdate({ publicMessage: true })
    const statuses = new Set<number>()
    for (let i = 0; i < flips.commit.length; i++) {
      const reply = await service.api.send('flips', 'alice', flip(flips.commit, i))
      assert.ok([201, 400, 409].includes(reply.status), `bit flip at ${i}: ${reply.status} ${JSON.stringify(reply.body)}`)
      statuses.add(reply.status)
    }
    // The DS cannot verify a PublicMessage's signature: some flipped commits are relayed.
    assert.deepEqual([...statuses].sort(), [201, 400, 409])
  })

  test('a message for another group is a 400, checked before any epoch rule', async () => {
    const alice = await newGroup('home')
    await newGroup('elsewhere', 7)
    const app = await alice.client.sendApplication('wrong door')
    const update = await alice.client.selfUpdate()
    assertInvalid(await service.api.send('elsewhere', 'alice', app), 'group_id', 'application')
    assertInvalid(await service.api.commit('elsewhere', 'alice', update, { omit: ['group_info'] }), 'group_id', 'commit')
    // The right group with the wrong GroupInfo: the GroupInfo names another group.
    const other = new RestMember(await MlsTestClient.create('alice', 1), service.api, 'elsewhere')
    await other.client.createGroup('elsewhere')
    const foreign = await other.client.selfUpdate()
    assertInvalid(await service.api.commit('home', 'alice', update, { group_info: foreign.groupInfo, ratchet_tree: foreign.ratchetTree }), 'group_id', 'group_info')
    assert.deepEqual(await service.api.messages('elsewhere'), [])
    assert.equal((await alice.commit(update)).status, 201)
  })

  test('message_type must agree with the bytes, is derived when omitted, and stored with epoch and content type', async () => {
    const alice = await newGroup('types')
    const app = await alice.client.sendApplication('typed')
    for (const wrong of ['Commit', 'Welcome', 'Proposal', 'Add']) {
      const reply = await service.api.send('types', 'alice', app, wrong)
      assertInvalid(reply, 'message_type', wrong)
      assert.match(reply.body.message, /application message/)
    }
    assert.deepEqual((await service.api.send('types', 'alice', app)).body, { group_id: 'types', seq: 1, epoch: 0, message_type: 'Application' })
    assert.equal((await service.api.send('types', 'alice', await alice.client.sendApplication('again'), 'Application')).status, 201)

    const { keyPackage } = await claimable('types-bob', 'types')
    const add = await alice.client.addMembers([keyPackage])
    assertInvalid(await service.api.send('types', 'alice', add.commit, 'Application'), 'message_type', 'commit as Application')
    assertInvalid(await service.api.send('types', 'alice', add.welcome!, 'Commit'), 'message_type', 'welcome as Commit')
    assert.deepEqual((await service.api.send('types', 'alice', add.commit)).body, { group_id: 'types', seq: 3, epoch: 1, message_type: 'Commit' })
    assert.deepEqual((await service.api.send('types', 'alice', add.welcome!)).body, { group_id: 'types', seq: 4, epoch: 1, message_type: 'Welcome' })
    assert.equal((await service.api.welcomes('types-bob')).length, 1, 'a relayed Welcome is routed by its KeyPackageRef')

    const log = await service.api.messages('types')
    assert.deepEqual(log.map((m) => [m.seq, m.message_type, m.content_type, m.epoch]), [
      [1, 'Application', 'application', 0],
      [2, 'Application', 'application', 0],
      [3, 'Commit', 'commit', 0],
      [4, 'Welcome', 'welcome', null],
    ])
    assert.deepEqual(log.map((m) => m.message), [b64(app), log[1]!.message, b64(add.commit), b64(add.welcome!)])
  })

  test('an application message for another epoch is a 409 with the current epoch', async () => {
    const alice = await newGroup('epochs')
    const old = await alice.client.sendApplication('from epoch 0')
    assert.equal((await alice.commit(await alice.client.selfUpdate())).status, 201)
    const reply = await service.api.send('epochs', 'alice', old)
    assert.equal(reply.status, 409)
    assert.equal(reply.body.error, 'stale_epoch')
    assert.equal(reply.body.current_epoch, 1)
    // The DS may know a later epoch than the client (a group registered at epoch 5).
    const behind = await newGroup('ahead', 5)
    const early = await service.api.send('ahead', 'alice', await behind.client.sendApplication('hi'))
    assert.deepEqual([early.status, early.body.error, early.body.current_epoch], [409, 'stale_epoch', 5])
    assert.equal((await service.api.messages('epochs')).length, 1)
  })

  test('20 concurrent commits for one epoch: exactly one is accepted, with its GroupInfo', async () => {
    const alice = await newGroup('race')
    const bundles = []
    for (let i = 0; i < 20; i++) {
      bundles.push(await alice.client.selfUpdate())
      alice.client.rollback()
    }
    const replies = await Promise.all(bundles.map((bundle) => alice.commit(bundle)))
    const accepted = replies.flatMap((r, i) => (r.status === 201 ? [i] : []))
    assert.equal(accepted.length, 1)
    for (const r of replies.filter((r) => r.status !== 201)) {
      assert.deepEqual([r.status, r.body.error, r.body.current_epoch], [409, 'stale_epoch', 1])
    }
    const winner = bundles[accepted[0]!]!
    const log = await service.api.messages('race')
    assert.deepEqual(log.map((m) => m.message), [b64(winner.commit)])
    assert.equal((await service.api.group('race')).epoch, 1)
    const info = await service.api.groupInfo('race')
    assert.deepEqual(info.body, { group_id: 'race', epoch: 1, group_info: b64(winner.groupInfo), ratchet_tree: b64(winner.ratchetTree) })
  })

  test('a rejected commit bundle routes no Welcome and stores no GroupInfo', async () => {
    const alice = await newGroup('stale-bundle')
    const update = await alice.client.selfUpdate()
    alice.client.rollback()
    const { keyPackage } = await claimable('stale-bob', 'stale-bundle')
    const add = await alice.client.addMembers([keyPackage])
    assert.equal((await alice.commit(update, { omit: ['group_info'] })).status, 201)
    const reply = await alice.commit(add)
    assert.deepEqual([reply.status, reply.body.error, reply.body.current_epoch], [409, 'stale_epoch', 1])
    assert.deepEqual(await service.api.welcomes('stale-bob'), [])
    assert.deepEqual((await service.api.group('stale-bundle')).members, ['alice'])
    const info = await service.api.groupInfo('stale-bundle')
    assert.deepEqual([info.status, info.body.error], [404, 'group_info_not_found'])
    assert.equal((await service.api.messages('stale-bundle')).length, 1)
  })

  test('a Welcome for a KeyPackage the DS never handed out is a 400 naming the ref, unless recipients are named', async () => {
    const alice = await newGroup('unknown-ref')
    const bob = new RestMember(await MlsTestClient.create('direct-bob', 1), service.api, 'unknown-ref')
    const kp = await bob.client.createKeyPackage()
    const add = await alice.client.addMembers([kp.bytes])
    const reply = await alice.commit(add)
    assertInvalid(reply, 'unknown_key_package_ref')
    assert.equal(reply.body.ref, kp.ref)
    assert.match(reply.body.message, new RegExp(kp.ref))
    assert.deepEqual(await service.api.messages('unknown-ref'), [])
    assert.equal((await service.api.group('unknown-ref')).epoch, 0)
    assert.equal((await service.api.groupInfo('unknown-ref')).status, 404)
    assert.deepEqual(await service.api.welcomes('direct-bob'), [])

    const routed = await alice.commit(add, { welcome_recipients: ['direct-bob'] })
    assert.deepEqual(routed.body, { group_id: 'unknown-ref', seq: 1, epoch: 1, message_type: 'Commit' })
    assert.deepEqual((await service.api.group('unknown-ref')).members, ['alice', 'direct-bob'])
    await bob.joinFromInbox()
    assert.equal(hex(bob.client.epochAuthenticator()), hex(alice.client.epochAuthenticator()))
  })

  test('the GroupInfo must be for the epoch the commit starts, and verify when the tree is given', async () => {
    const alice = await newGroup('gi')
    const first = await alice.client.selfUpdate()
    assert.equal((await alice.commit(first)).status, 201)
    const second = await alice.client.selfUpdate()
    const stale = await alice.commit(second, { group_info: first.groupInfo, ratchet_tree: first.ratchetTree })
    assertInvalid(stale, 'group_info_epoch')
    assert.match(stale.body.message, /epoch 1.*epoch 2/)
    assertInvalid(await alice.commit(second, { group_info: first.groupInfo, omit: ['ratchet_tree'] }), 'group_info_epoch', 'without the tree')
    assertInvalid(await alice.commit(second, { ratchet_tree: first.ratchetTree }), 'ratchet_tree', 'tree of another epoch')

    const { member: carol, keyPackage } = await claimable('gi-carol', 'gi')
    alice.client.rollback()
    const add = await alice.client.addMembers([keyPackage])
    assertInvalid(await alice.commit(add, { group_info: flip(add.groupInfo, -1) }), 'group_info_signature')
    assert.deepEqual(await service.api.welcomes('gi-carol'), [], 'no Welcome for a refused bundle')
    assert.deepEqual((await service.api.group('gi')).members, ['alice'])
    assert.equal((await service.api.groupInfo('gi')).body.epoch, 1)

    assert.equal((await alice.commit(add)).status, 201)
    assert.equal((await service.api.groupInfo('gi')).body.epoch, 2)
    await carol.joinFromInbox()
    assert.equal(hex(carol.client.epochAuthenticator()), hex(alice.client.epochAuthenticator()))
  })
})
