import assert from 'node:assert/strict'
import { after, describe, test } from 'node:test'
import { decodeMlsMessage } from 'ts-mls'
import { assertAgreement } from '../helpers/mls-agreement.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { b64, RestMember, unb64, type RestApi } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { TcpApi } from '../tcp/tcp-api.js'
import { hmacToken, TEST_SECRET } from '../helpers/tokens.js'
import { silentLogger } from '../helpers/app.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { MemoryStore } from '../../src/storage/memory-store.js'

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

/** The one answer a non-member gets to an external commit that is not taken. */
function assertRefused(reply: { status: number; body: Record<string, unknown> }, what = ''): void {
  assert.equal(reply.status, 400, `${what} ${JSON.stringify(reply.body)}`)
  assert.deepEqual([reply.body.error, reply.body.check], ['invalid_message', 'external_commit'], what)
  assert.match(String(reply.body.message), /fetch the GroupInfo again/)
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
    assertRefused(forged)
    assertRefused(await service.api.send(group, 'dave', withBadSignature(join.commit)), 'the same through POST /messages')

    const withWelcome = await service.api.call('POST', `/groups/${group}/commits`, { sender_id: 'dave', commit: b64(join.commit), welcome: b64(join.groupInfo) })
    assert.equal(withWelcome.status, 400)
    assert.match(withWelcome.body.message, /without a welcome/)
    assert.deepEqual(await service.api.group(group), before, 'nothing changed')

    // A commit for the next epoch, made from the GroupInfo of another group with the same id (so
    // it decodes and is signed, but not over this group's context): refused now, and refused once
    // the group has reached that epoch (it must never be taken unverified, whatever the timing).
    const mallory = await MlsTestClient.create('mallory')
    await mallory.createGroup(group)
    await mallory.selfUpdate()
    const decoy = await mallory.selfUpdate()
    const ahead = await (await MlsTestClient.create('trent')).joinExternal(decoy.groupInfo, decoy.ratchetTree)
    assert.equal(ahead.epoch, 2n)
    assertRefused(await service.api.commit(group, 'trent', ahead))

    // The epoch moves on (a member commits and publishes its GroupInfo): the old one is stale,
    // and the answer to a non-member does not say the epoch.
    assert.equal((await alice.commit(await alice.client.selfUpdate())).status, 201)
    const stale = await service.api.commit(group, 'dave', join)
    assertRefused(stale)
    assert.equal(stale.body.current_epoch, undefined)
    assertRefused(await service.api.commit(group, 'trent', ahead), 'at its epoch, but signed over another context')
    assertRefused(await service.api.send(group, 'trent', ahead.commit))

    // A member commits without publishing a GroupInfo: a GroupInfo of that epoch handed over
    // outside the DS makes a commit the DS cannot check, so it is refused.
    const unpublished = await alice.client.selfUpdate()
    assert.equal((await alice.commit(unpublished, { omit: ['group_info'] })).status, 201)
    const erin = await MlsTestClient.create('erin')
    assertRefused(await service.api.commit(group, 'erin', await erin.joinExternal(unpublished.groupInfo, unpublished.ratchetTree)))
    const group3 = await service.api.group(group)
    assert.deepEqual([group3.members, group3.epoch], [['alice', 'bob'], 3])
    assert.equal((await service.api.messages(group)).length, 3, 'nothing refused was stored')
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

describe('external commits with AUTH=jwt', () => {
  const service = useTestService({ auth: 'jwt', authJwtSecret: TEST_SECRET })

  test('a client joins as itself with the GroupInfo a member gave it; a non-member learns nothing of the group from a refusal', async () => {
    const api = async (client: string) => service.api.as(await hmacToken(client))
    const group = 'ext-jwt'
    const aliceApi = await api('alice')
    const alice = new RestMember(await MlsTestClient.create('alice'), aliceApi, group)
    await alice.client.createGroup(group)
    assert.equal((await aliceApi.createGroup(group, 'alice')).status, 201)
    const first = await alice.client.selfUpdate()
    assert.equal((await alice.commit(first)).status, 201)
    // Only members read the GroupInfo: alice hands it to carol (an invitation).
    const carolApi = await api('carol')
    assert.equal((await carolApi.groupInfo(group)).status, 403)
    const carol = await MlsTestClient.create('carol')
    const join = await carol.joinExternal(first.groupInfo, first.ratchetTree)
    assert.equal((await (await api('mallory')).commit(group, 'carol', join)).status, 403, 'only as itself')
    const eve = await MlsTestClient.create('eve')
    const eveJoin = await eve.joinExternal(first.groupInfo, first.ratchetTree)
    assert.equal((await carolApi.commit(group, 'carol', join)).status, 201)
    assert.deepEqual((await carolApi.group(group)).members, ['alice', 'carol'])
    // Eve had the GroupInfo of epoch 1 too, but the group has moved on: the same answer as for garbage.
    const late = await (await api('eve')).commit(group, 'eve', eveJoin)
    assert.deepEqual([late.status, late.body.check, late.body.current_epoch], [400, 'external_commit', undefined])
  })
})

describe('external commits racing a member\'s commit', () => {
  test('one made for the next epoch is never taken, even when the group reaches that epoch between the checks and the append', async () => {
    // A store that lets alice's commit land right after the service read the group.
    let racing: (() => Promise<unknown>) | undefined
    class RacedStore extends MemoryStore {
      override async getGroup(groupId: string) {
        const group = await super.getGroup(groupId)
        const race = racing
        racing = undefined
        await race?.()
        return group
      }
    }
    const service = new DeliveryService({ store: new RacedStore(), log: silentLogger })
    const bundle = (groupId: string, senderId: string, b: { commit: Uint8Array; groupInfo: Uint8Array; ratchetTree: Uint8Array }) =>
      ({ groupId, senderId, commit: b.commit, groupInfo: b.groupInfo, ratchetTree: b.ratchetTree })
    const alice = await MlsTestClient.create('alice')
    await alice.createGroup('room')
    await service.createGroup('room', 'alice')
    await service.commit(bundle('room', 'alice', await alice.selfUpdate()))
    // Mallory's own group with the same id, two epochs on: trent's commit from it is for epoch 2.
    const mallory = await MlsTestClient.create('mallory')
    await mallory.createGroup('room')
    await mallory.selfUpdate()
    const decoy = await mallory.selfUpdate()
    const ahead = await (await MlsTestClient.create('trent')).joinExternal(decoy.groupInfo, decoy.ratchetTree)
    const next = await alice.selfUpdate()
    racing = () => service.commit(bundle('room', 'alice', next))
    await assert.rejects(service.commit(bundle('room', 'trent', ahead)), (err: Error & { details?: Record<string, unknown> }) => err.details?.check === 'external_commit')
    const room = await service.getGroup('room')
    assert.deepEqual([room.members, room.epoch], [['alice'], 2], 'alice\'s commit was taken, trent\'s was not')
  })
})
