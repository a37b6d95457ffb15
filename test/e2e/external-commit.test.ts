import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { decodeMlsMessage } from 'ts-mls'
import { assertAgreement } from '../helpers/mls-agreement.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { b64, RestMember, unb64, type RestApi } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { TcpApi } from '../tcp/tcp-api.js'

/**
 * External commits (RFC 9420 §12.4.3.2) with real ts-mls clients: a client joins from the
 * GroupInfo the DS keeps, and a member that lost its state rejoins (resync). The DS lets the
 * sender join in the same step as the commit, and checks its signature against the GroupContext
 * of the group's epoch, so bytes from someone without that GroupInfo cannot end the epoch.
 */

/** The group's GroupInfo and ratchet tree, as the DS keeps them. */
async function groupInfoOf(api: RestApi, group: string): Promise<{ groupInfo: Uint8Array; ratchetTree: Uint8Array; epoch: number }> {
  const reply = await api.groupInfo(group)
  assert.equal(reply.status, 200, JSON.stringify(reply.body))
  return { groupInfo: unb64(reply.body.group_info), ratchetTree: unb64(reply.body.ratchet_tree), epoch: reply.body.epoch }
}

/** alice and bob in `group` (bob by a Welcome), the GroupInfo of epoch 1 kept by the DS. */
async function pair(api: RestApi, group: string): Promise<{ alice: RestMember; bob: RestMember }> {
  const [alice, bob] = await Promise.all(['alice', 'bob'].map(async (name) => new RestMember(await MlsTestClient.create(name), api, group)))
  assert.equal((await api.putKeyPackages('bob', [(await bob!.client.createKeyPackage()).bytes])).status, 200)
  await alice!.client.createGroup(group)
  assert.equal((await api.createGroup(group, 'alice')).status, 201)
  assert.equal((await alice!.commit(await alice!.client.addMembers([await api.claimBytes('bob')]))).status, 201)
  await bob!.joinFromInbox()
  return { alice: alice!, bob: bob! }
}

/** The same commit with one byte of its signature changed. */
function withBadSignature(commit: Uint8Array): Uint8Array {
  const decoded = decodeMlsMessage(commit, 0)![0]
  assert.equal(decoded.wireformat, 'mls_public_message')
  const signature = decoded.wireformat === 'mls_public_message' ? decoded.publicMessage.auth.signature : new Uint8Array()
  const at = Buffer.from(commit).indexOf(Buffer.from(signature))
  assert.ok(at > 0)
  const bad = Uint8Array.from(commit)
  bad[at + 5]! ^= 0x01
  return bad
}

describe('external commits', () => {
  const service = useTestService()

  test('a client joins from the GroupInfo, gets what follows, and everyone agrees; a member that lost its state rejoins', async () => {
    const group = 'ext-join'
    const { alice, bob } = await pair(service.api, group)
    const carol = new RestMember(await MlsTestClient.create('carol'), service.api, group)

    const kept = await groupInfoOf(service.api, group)
    const join = await carol.client.joinExternal(kept.groupInfo, kept.ratchetTree)
    const reply = await carol.commit(join)
    assert.equal(reply.status, 201, JSON.stringify(reply.body))
    assert.deepEqual(reply.body, { group_id: group, seq: 2, epoch: 2, message_type: 'Commit' })
    assert.deepEqual((await service.api.group(group)).members, ['alice', 'bob', 'carol'])
    assert.equal((await service.api.groupInfo(group)).body.epoch, 2, 'the joiner\'s GroupInfo is kept for the next')
    carol.cursor = reply.body.seq
    // The members learn of her from the log; she is not sent her own commit.
    await alice.sync()
    await bob.sync()
    await assertAgreement([alice.client, bob.client, carol.client], 'external-join')
    const queue = await service.api.call('GET', '/clients/carol/messages?after=0')
    assert.deepEqual(queue.body.deliveries, [])

    const said = await alice.say('welcome carol')
    assert.equal(said.status, 201)
    const delivered = await service.api.call('GET', '/clients/carol/messages?after=0')
    assert.equal(delivered.body.deliveries.length, 1, 'a member now: she gets what follows')
    const received = await carol.client.receive(unb64(delivered.body.deliveries[0].message))
    assert.deepEqual(received.kind === 'application' && received.text, 'welcome carol')
    carol.cursor = said.body.seq
    await bob.sync()

    // Bob loses his device's state and rejoins with a resync commit, which removes his old leaf.
    bob.client.forgetGroup()
    const latest = await groupInfoOf(service.api, group)
    const resync = await bob.client.joinExternal(latest.groupInfo, latest.ratchetTree, true)
    const rejoined = await bob.commit(resync)
    assert.equal(rejoined.status, 201, JSON.stringify(rejoined.body))
    bob.cursor = rejoined.body.seq
    assert.deepEqual((await service.api.group(group)).members, ['alice', 'bob', 'carol'], 'still listed once')
    await alice.sync()
    await carol.sync()
    await assertAgreement([alice.client, bob.client, carol.client], 'resync')
    assert.deepEqual(bob.client.members().sort(), ['alice', 'bob', 'carol'])
  })

  test('refused, with nothing stored or joined: a bad signature, an old GroupInfo, no GroupInfo of the epoch, a Welcome with it', async () => {
    const group = 'ext-refused'
    const { alice } = await pair(service.api, group)
    const dave = await MlsTestClient.create('dave')
    const kept = await groupInfoOf(service.api, group)
    const join = await dave.joinExternal(kept.groupInfo, kept.ratchetTree)
    const before = await service.api.group(group)

    const forged = await service.api.commit(group, 'dave', { ...join, commit: withBadSignature(join.commit) })
    assert.equal(forged.status, 400, JSON.stringify(forged.body))
    assert.equal(forged.body.check, 'message_signature')
    const relayed = await service.api.send(group, 'dave', withBadSignature(join.commit))
    assert.equal(relayed.body.check, 'message_signature', 'the same through POST /messages')

    const withWelcome = await service.api.call('POST', `/groups/${group}/commits`, { sender_id: 'dave', commit: b64(join.commit), welcome: b64(join.groupInfo) })
    assert.equal(withWelcome.status, 400)
    assert.match(withWelcome.body.message, /without a welcome/)
    assert.deepEqual(await service.api.group(group), before, 'nothing changed')

    // The epoch moves on (a member commits and publishes its GroupInfo): the old one is stale.
    assert.equal((await alice.commit(await alice.client.selfUpdate())).status, 201)
    const stale = await service.api.commit(group, 'dave', join)
    assert.equal(stale.status, 409)
    assert.deepEqual([stale.body.error, stale.body.current_epoch], ['stale_epoch', 2])

    // A member commits without publishing a GroupInfo: a GroupInfo of that epoch handed over
    // outside the DS makes a commit the DS cannot check, so it is refused.
    const unpublished = await alice.client.selfUpdate()
    assert.equal((await alice.commit(unpublished, { omit: ['group_info'] })).status, 201)
    const erin = await MlsTestClient.create('erin')
    const unchecked = await service.api.commit(group, 'erin', await erin.joinExternal(unpublished.groupInfo, unpublished.ratchetTree))
    assert.equal(unchecked.status, 400, JSON.stringify(unchecked.body))
    assert.equal(unchecked.body.check, 'external_commit')
    const group3 = await service.api.group(group)
    assert.deepEqual([group3.members, group3.epoch], [['alice', 'bob'], 3])
  })

  test('through the legacy TCP door too', async () => {
    const group = 'ext-tcp'
    await pair(service.api, group)
    const frank = await MlsTestClient.create('frank')
    const kept = await groupInfoOf(service.api, group)
    const tcp = await TcpApi.connect(service.running.tcpPort!)
    after(() => tcp.close())
    const answer = await tcp.commit(group, 'frank', await frank.joinExternal(kept.groupInfo, kept.ratchetTree))
    assert.equal(answer.type, 'CommitResponse', JSON.stringify(answer))
    assert.deepEqual((await service.api.group(group)).members, ['alice', 'bob', 'frank'])
  })
})

describe('external commits with MLS_EXTERNAL_COMMITS=false', () => {
  const service = useTestService({ mlsExternalCommits: false })

  test('a client that is not a member cannot join by one; a member can still resync', async () => {
    const group = 'ext-off'
    const { alice, bob } = await pair(service.api, group)
    const gina = await MlsTestClient.create('gina')
    const kept = await groupInfoOf(service.api, group)
    const refused = await service.api.commit(group, 'gina', await gina.joinExternal(kept.groupInfo, kept.ratchetTree))
    assert.equal(refused.status, 403)
    assert.equal(refused.body.error, 'not_member')
    bob.client.forgetGroup()
    const rejoined = await bob.commit(await bob.client.joinExternal(kept.groupInfo, kept.ratchetTree, true))
    assert.equal(rejoined.status, 201, JSON.stringify(rejoined.body))
    await alice.sync()
    await assertAgreement([alice.client, bob.client], 'resync-off')
    assert.deepEqual((await service.api.group(group)).members, ['alice', 'bob'])
  })
})
