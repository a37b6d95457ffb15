import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { assertAgreement } from '../helpers/mls-agreement.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { RestMember, unb64, type RestApi } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { TcpApi } from '../tcp/tcp-api.js'
import { silentLogger } from '../helpers/app.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { MemoryStore } from '../../src/storage/memory-store.js'

/**
 * A client's groups and its deletion, with real ts-mls clients: a device that lost its state
 * finds its groups and rejoins each by an external commit; a deleted client leaves its groups,
 * its KeyPackages (handed out or not) route no Welcome, and the members remove its leaf.
 */

/** `creator` makes the group at the DS and in MLS, and adds `joiners` by one commit; they join from their Welcomes. */
async function groupOf(api: RestApi, group: string, creator: string, joiners: readonly string[]): Promise<RestMember[]> {
  const owner = new RestMember(await MlsTestClient.create(creator), api, group)
  const members = await Promise.all(joiners.map(async (name) => new RestMember(await MlsTestClient.create(name), api, group)))
  for (const member of members) assert.equal((await api.putKeyPackages(member.name, [(await member.client.createKeyPackage()).bytes])).status, 200)
  await owner.client.createGroup(group)
  assert.equal((await api.createGroup(group, creator)).status, 201)
  const added = await owner.commit(await owner.client.addMembers(await Promise.all(members.map((m) => api.claimBytes(m.name)))))
  assert.equal(added.status, 201, JSON.stringify(added.body))
  for (const member of members) {
    await member.joinFromInbox()
    member.cursor = added.body.seq
  }
  owner.cursor = added.body.seq
  return [owner, ...members]
}

describe("real MLS clients: a client's groups, and deleting a client", () => {
  const service = useTestService()

  test('a device that lost its state lists its groups, through either door, and rejoins each by an external commit', async () => {
    const api = service.api
    // One MLS client per group for bob, as a device keeps one state per group.
    const [aliceA, bobA] = await groupOf(api, 'rejoin-a', 'alice', ['bob'])
    const [aliceB, bobB] = await groupOf(api, 'rejoin-b', 'alice', ['bob'])
    bobA!.client.forgetGroup()
    bobB!.client.forgetGroup()

    const first = await api.call('GET', '/clients/bob/groups?limit=1')
    assert.deepEqual(first.body, { client_id: 'bob', groups: ['rejoin-a'], next_after: 'rejoin-a' })
    const second = await api.call('GET', '/clients/bob/groups?limit=1&after=rejoin-a')
    assert.deepEqual(second.body, { client_id: 'bob', groups: ['rejoin-b'] })
    const tcp = await TcpApi.connect(service.running.tcpPort!)
    try {
      assert.deepEqual(await tcp.call({ type: 'ListClientGroups', client_id: 'bob' }), { type: 'ClientGroupsResponse', client_id: 'bob', groups: ['rejoin-a', 'rejoin-b'] })
    } finally {
      tcp.close()
    }

    const devices = new Map([['rejoin-a', { bob: bobA!, alice: aliceA! }], ['rejoin-b', { bob: bobB!, alice: aliceB! }]])
    for (const group of [...first.body.groups, ...second.body.groups] as string[]) {
      const { bob, alice } = devices.get(group)!
      const info = await api.groupInfo(group)
      assert.equal(info.status, 200, JSON.stringify(info.body))
      const resync = await bob.client.joinExternal(unb64(info.body.group_info), unb64(info.body.ratchet_tree), true)
      const rejoined = await bob.commit(resync)
      assert.equal(rejoined.status, 201, JSON.stringify(rejoined.body))
      bob.cursor = rejoined.body.seq
      await alice.sync()
      await assertAgreement([alice.client, bob.client], group)
      assert.deepEqual(bob.client.members().sort(), ['alice', 'bob'], `${group}: its old leaf is gone`)
      assert.equal((await alice.say(`back in ${group}`)).status, 201)
      await bob.sync()
      assert.deepEqual(bob.received, [`alice: back in ${group}`])
    }
  })

  test('a deleted client leaves its groups; its KeyPackages, even one handed out, route no Welcome; the members remove its leaf', async () => {
    const api = service.api
    const [alice, bob, carol] = await groupOf(api, 'erase', 'erase-alice', ['erase-bob', 'erase-carol'])
    // More of bob's KeyPackages: one spare, one last-resort, and one alice claims for another group.
    const spare = await bob!.client.createKeyPackage()
    const lastResort = await bob!.client.createKeyPackage({ lastResort: true })
    const forLater = await bob!.client.createKeyPackage()
    assert.equal((await api.putKeyPackages('erase-bob', [forLater.bytes, spare.bytes, lastResort.bytes])).status, 200)
    const later = new RestMember(await MlsTestClient.create('erase-alice'), api, 'erase-later')
    await later.client.createGroup('erase-later')
    assert.equal((await api.createGroup('erase-later', 'erase-alice')).status, 201)
    const claimed = await api.claimBytes('erase-bob')
    assert.equal((await alice!.say('before the delete')).status, 201)

    const deleted = await api.call('DELETE', '/clients/erase-bob')
    assert.equal(deleted.status, 200)
    // Its queue held the Welcome and alice's message; its inbox the Welcome.
    assert.deepEqual(deleted.body, { client_id: 'erase-bob', groups_left: 1, key_packages_deleted: 2, deliveries_deleted: 2, welcomes_deleted: 1 })
    assert.deepEqual((await api.group('erase')).members, ['erase-alice', 'erase-carol'])
    assert.equal((await api.claim('erase-bob')).status, 404)

    // The KeyPackage claimed before the delete: a commit that adds bob with it is refused, and nothing moves.
    const add = await later.commit(await later.client.addMembers([claimed]))
    assert.equal(add.status, 400, JSON.stringify(add.body))
    assert.deepEqual([add.body.error, add.body.check], ['invalid_message', 'unknown_key_package_ref'])
    assert.match(add.body.message, /its client was deleted/)
    later.client.rollback()
    assert.deepEqual((await api.group('erase-later')).members, ['erase-alice'])
    assert.equal((await api.group('erase-later')).epoch, 0)
    assert.deepEqual(await api.messages('erase-later'), [])

    // The group's MLS state still has bob's leaf: alice removes it, carol follows, bob gets nothing.
    await carol!.sync()
    const removed = await alice!.commit(await alice!.client.removeMember('erase-bob'))
    assert.equal(removed.status, 201, JSON.stringify(removed.body))
    alice!.cursor = removed.body.seq
    await carol!.sync()
    await assertAgreement([alice!.client, carol!.client], 'after-erase')
    assert.deepEqual(carol!.client.members().sort(), ['erase-alice', 'erase-carol'])
    assert.deepEqual(carol!.received, ['erase-alice: before the delete'])
    const queue = await api.call('GET', '/clients/erase-bob/messages?after=0')
    assert.deepEqual(queue.body.deliveries, [])
    assert.deepEqual(await api.welcomes('erase-bob'), [])
  })
})

describe('a delete racing a commit that adds the client', () => {
  test('the Welcome is refused when the client is deleted between the lookup of its KeyPackageRef and the append', async () => {
    // A store that lets bob's delete land right after the service looked his ref up.
    let racing: (() => Promise<unknown>) | undefined
    class RacedStore extends MemoryStore {
      override async keyPackageOwners(refs: readonly string[], now?: number) {
        const owners = await super.keyPackageOwners(refs, now)
        const race = racing
        racing = undefined
        await race?.()
        return owners
      }
    }
    const service = new DeliveryService({ store: new RacedStore(), log: silentLogger })
    const alice = await MlsTestClient.create('alice')
    const bob = await MlsTestClient.create('bob')
    await service.storeKeyPackages('bob', [(await bob.createKeyPackage()).bytes])
    await alice.createGroup('room')
    await service.createGroup('room', 'alice')
    const claimed = (await service.fetchKeyPackage('bob'))!
    const add = await alice.addMembers([claimed.data])
    racing = () => service.deleteClient('bob')
    await assert.rejects(
      service.commit({ groupId: 'room', senderId: 'alice', commit: add.commit, welcome: add.welcome, groupInfo: add.groupInfo, ratchetTree: add.ratchetTree }),
      (err: Error & { details?: Record<string, unknown> }) => err.details?.check === 'unknown_key_package_ref' && err.details.ref === claimed.ref,
    )
    const room = await service.getGroup('room')
    assert.deepEqual([room.members, room.epoch, room.nextSeq], [['alice'], 0, 1], 'nothing changed')
    assert.deepEqual(await service.readWelcomes('bob'), [])
    assert.deepEqual((await service.listClientGroups('bob')).groups, [])
  })
})
