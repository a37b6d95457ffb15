import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MlsTestClient } from '../helpers/mls-client.js'
import { at, b64, RestMember, unb64 } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { assertAgreement } from '../helpers/mls-agreement.js'

/**
 * The whole life of a group through the REST API, with real ts-mls clients: KeyPackages,
 * the commit bundle (RFC 9420 §14), Welcome routing by KeyPackageRef, the group log read back
 * in seq order, and one Commit per epoch (RFC 9750 §5.2.1).
 */

async function agree(members: readonly RestMember[]): Promise<void> {
  await assertAgreement(members.map((m) => m.client), 'e2e-rest')
}

async function syncAll(members: readonly RestMember[]): Promise<void> {
  for (const m of members) await m.sync()
}

/** Each member says one line; every other member must decrypt exactly those lines, in seq order. */
async function chat(members: readonly RestMember[], tag: string): Promise<void> {
  const before = new Map(members.map((m) => [m, m.received.length]))
  const lines: string[] = []
  for (const m of members) {
    const reply = await m.say(`${tag} from ${m.name}`)
    assert.equal(reply.status, 201, JSON.stringify(reply.body))
    assert.equal(reply.body.message_type, 'Application')
    assert.equal(BigInt(reply.body.epoch), m.client.epoch)
    lines.push(`${m.name}: ${tag} from ${m.name}`)
  }
  await syncAll(members)
  for (const m of members) {
    const got = m.received.slice(before.get(m))
    assert.deepEqual(got, lines.filter((l) => !l.startsWith(`${m.name}:`)), `${m.name} decrypted`)
  }
}

for (const suite of [1, 3, 83]) {
  describe(`MLS over REST, suite ${suite}`, () => {
    const service = useTestService()

    test('create, join, talk, update, remove, add, race, converge', async () => {
      // Any characters: the MLS group id is the UTF-8 of the DS group id.
      const group = `équipe/${suite} ✓`
      const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map(async (name) =>
        new RestMember(await MlsTestClient.create(name, suite), service.api, group)))
      const members = { alice: alice!, bob: bob!, carol: carol!, dave: dave! }

      // Everyone uploads KeyPackages; the DS counts them by suite.
      const refs = new Map<string, string>()
      for (const m of Object.values(members)) {
        const kp = await m.client.createKeyPackage()
        refs.set(m.name, kp.ref)
        const reply = await service.api.putKeyPackages(m.name, [kp.bytes])
        assert.equal(reply.status, 200, JSON.stringify(reply.body))
        assert.deepEqual(reply.body, { client_id: m.name, stored: 1, available: 1 })
        assert.deepEqual((await service.api.count(m.name)).by_ciphersuite, { [String(suite)]: 1 })
      }

      // Alice claims Bob's and Carol's KeyPackages and creates the group.
      const claimed = []
      for (const name of ['bob', 'carol']) {
        const reply = await service.api.claim(name, suite)
        assert.equal(reply.status, 200)
        assert.equal(reply.body.key_package_ref, refs.get(name))
        assert.equal(reply.body.ciphersuite, suite)
        claimed.push(unb64(reply.body.key_package))
      }
      assert.equal((await service.api.claim('bob', suite)).status, 404, 'a claimed KeyPackage is gone')
      await members.alice.client.createGroup(group)
      assert.equal((await service.api.createGroup(group, 'alice')).status, 201)

      const add = await members.alice.client.addMembers(claimed)
      let reply = await members.alice.commit(add)
      assert.equal(reply.status, 201, JSON.stringify(reply.body))
      assert.deepEqual(reply.body, { group_id: group, seq: 1, epoch: 1, message_type: 'Commit' })
      assert.deepEqual((await service.api.group(group)).members, ['alice', 'bob', 'carol'])
      assert.deepEqual(await service.api.welcomes('dave'), [])

      await members.bob.joinFromInbox()
      await members.carol.joinFromInbox()
      const trio = [members.alice, members.bob, members.carol]
      await agree(trio)
      await chat(trio, 'hello')

      // Bob refreshes his keys.
      const update = await members.bob.client.selfUpdate()
      reply = await members.bob.commit(update)
      assert.equal(reply.status, 201, JSON.stringify(reply.body))
      assert.equal(reply.body.epoch, 2)
      assert.equal((await service.api.groupInfo(group)).body.group_info, b64(update.groupInfo), 'the GroupInfo of epoch 2')
      await syncAll(trio)
      await agree(trio)

      // Alice removes Carol; the DS cannot see that inside the commit, so she tells it too.
      const remove = await members.alice.client.removeMember('carol')
      reply = await members.alice.commit(remove)
      assert.equal(reply.status, 201, JSON.stringify(reply.body))
      assert.equal(reply.body.epoch, 3)
      assert.equal((await service.api.call('DELETE', `/groups/${at(group)}/members/carol`)).status, 204)
      await members.bob.sync()
      const duo = [members.alice, members.bob]
      await agree(duo)
      assert.deepEqual(members.alice.client.members(), ['alice', 'bob'])
      const carolSpeaks = await service.api.send(group, 'carol', await members.carol.client.sendApplication('still here?'))
      assert.equal(carolSpeaks.status, 403, 'a removed member cannot post')

      // Dave joins by a later commit, with the KeyPackage Alice claims for him.
      const addDave = await members.alice.client.addMembers([await service.api.claimBytes('dave', suite)])
      reply = await members.alice.commit(addDave)
      assert.equal(reply.status, 201, JSON.stringify(reply.body))
      assert.equal(reply.body.epoch, 4)
      assert.deepEqual((await service.api.group(group)).members, ['alice', 'bob', 'dave'])
      await members.dave.joinFromInbox()
      await members.bob.sync()
      const current = [members.alice, members.bob, members.dave]
      await agree(current)
      await chat(current, 'welcome dave')
      assert.ok(!members.carol.received.some((l) => l.includes('welcome dave')))

      // Alice and Bob commit at epoch 4 at once: the DS accepts exactly one.
      const [fromAlice, fromBob] = [await members.alice.client.selfUpdate(), await members.bob.client.selfUpdate()]
      assert.equal(fromAlice.epoch, 4n)
      assert.equal(fromBob.epoch, 4n)
      const replies = await Promise.all([members.alice.commit(fromAlice), members.bob.commit(fromBob)])
      assert.deepEqual(replies.map((r) => r.status).sort(), [201, 409], JSON.stringify(replies.map((r) => r.body)))
      const loserIndex = replies.findIndex((r) => r.status === 409)
      const loser = loserIndex === 0 ? members.alice : members.bob
      const winnerBundle = loserIndex === 0 ? fromBob : fromAlice
      assert.equal(replies[loserIndex]!.body.error, 'stale_epoch')
      assert.equal(replies[loserIndex]!.body.current_epoch, 5)
      assert.equal(replies[1 - loserIndex]!.body.epoch, 5)

      // The loser rolls back, catches up from the log and commits again.
      loser.client.rollback()
      assert.equal(loser.client.epoch, 4n)
      await syncAll(current)
      await agree(current)
      const retry = await loser.client.selfUpdate()
      assert.equal(retry.epoch, 5n)
      reply = await loser.commit(retry)
      assert.equal(reply.status, 201, JSON.stringify(reply.body))
      assert.equal(reply.body.epoch, 6)
      await syncAll(current)
      await agree(current)
      assert.equal(members.alice.client.epoch, 6n)
      await chat(current, 'after the race')

      // The log holds every accepted message with its epoch; only one Commit per epoch.
      const log = await service.api.messages(group)
      const commits = log.filter((m) => m.content_type === 'commit')
      assert.deepEqual(commits.map((m) => m.epoch), [0, 1, 2, 3, 4, 5])
      assert.ok(log.some((m) => m.message === b64(winnerBundle.commit)))
      assert.ok(log.every((m, i) => m.seq === i + 1))

      // The DS keeps the GroupInfo of the latest epoch, as JSON and as raw message/mls.
      const info = await service.api.groupInfo(group)
      assert.equal(info.status, 200)
      assert.deepEqual(info.body, { group_id: group, epoch: 6, group_info: b64(retry.groupInfo), ratchet_tree: b64(retry.ratchetTree) })
      const raw = await service.api.groupInfoRaw(group)
      assert.equal(raw.status, 200)
      assert.match(raw.type ?? '', /^message\/mls/)
      assert.deepEqual(raw.bytes, retry.groupInfo)
    })
  })
}
