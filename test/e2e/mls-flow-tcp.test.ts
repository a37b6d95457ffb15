import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { hex, MlsTestClient } from '../helpers/mls-client.js'
import { startTestService } from '../helpers/service.js'
import { bytes, TcpApi, TcpMember } from '../tcp/tcp-api.js'
import { assertAgreement } from '../helpers/mls-agreement.js'

/**
 * The whole life of a group through the legacy TCP listener's MLS extensions, with real
 * ts-mls clients, one connection per client: KeyPackages, the commit bundle (RFC 9420 §14),
 * Welcome routing by KeyPackageRef, the group log read back in seq order, and one Commit per
 * epoch (RFC 9750 §5.2.1), with the loser of a race told the current epoch.
 */

async function agree(members: readonly TcpMember[]): Promise<void> {
  await assertAgreement(members.map((m) => m.client), 'e2e-tcp')
}

async function syncAll(members: readonly TcpMember[]): Promise<void> {
  for (const m of members) await m.sync()
}

/** Each member says one line; every other member must decrypt exactly those lines, in seq order. */
async function chat(members: readonly TcpMember[], tag: string): Promise<void> {
  const before = new Map(members.map((m) => [m, m.received.length]))
  const lines: string[] = []
  for (const m of members) {
    const answer = await m.say(`${tag} from ${m.name}`)
    assert.deepEqual(answer, { type: 'MessageResponse', success: true, message: 'Message relayed successfully' })
    lines.push(`${m.name}: ${tag} from ${m.name}`)
  }
  await syncAll(members)
  for (const m of members) {
    assert.deepEqual(m.received.slice(before.get(m)), lines.filter((l) => !l.startsWith(`${m.name}:`)), `${m.name} decrypted`)
  }
}

for (const suite of [1, 3, 83]) {
  describe(`MLS over the TCP door, suite ${suite}`, () => {
    let running: RunningService
    const connections: TcpApi[] = []
    before(async () => {
      running = await startTestService()
    })
    after(async () => {
      for (const c of connections) c.close()
      await running.close()
    })

    test('create, join, talk, update, remove, add, race, converge', async () => {
      const group = `tcp-équipe/${suite} ✓`
      const join = async (name: string) => {
        const api = await TcpApi.connect(running.tcpPort!)
        connections.push(api)
        return new TcpMember(await MlsTestClient.create(name, suite), api, group)
      }
      const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map(join)) as [TcpMember, TcpMember, TcpMember, TcpMember]

      // Everyone uploads KeyPackages over its own connection; the DS counts them by suite.
      const refs = new Map<string, string>()
      await Promise.all([alice, bob, carol, dave].map(async (m) => {
        const kp = await m.client.createKeyPackage()
        refs.set(m.name, kp.ref)
        // Pipelined: both requests are on the wire before the first answer is read.
        const [stored, count] = await Promise.all([m.api.storeKeyPackages(m.name, [kp.bytes]), m.api.count(m.name)])
        assert.deepEqual(stored, { type: 'MessageResponse', success: true, message: `Stored 1 KeyPackage(s) for ${m.name}`, stored: 1, available: 1 })
        assert.deepEqual(count, { type: 'KeyPackageCountResponse', client_id: m.name, total: 1, by_ciphersuite: { [String(suite)]: 1 }, last_resort: 0, legacy: 0 })
      }))

      // Alice claims Bob's and Carol's KeyPackages and creates the group.
      const claimed: Uint8Array[] = []
      for (const name of ['bob', 'carol']) {
        const answer = await alice.api.fetchKeyPackage(name, suite)
        assert.equal(answer.type, 'KeyPackageResponse')
        assert.equal(answer.key_package_ref, refs.get(name))
        assert.equal(answer.ciphersuite, suite)
        assert.equal(answer.last_resort, false)
        claimed.push(Uint8Array.from(answer.key_package))
      }
      assert.deepEqual(await alice.api.fetchKeyPackage('bob', suite), { type: 'KeyPackageResponse', client_id: 'bob', key_package: null }, 'a claimed KeyPackage is gone')
      await alice.client.createGroup(group)
      assert.deepEqual(await alice.api.createGroup(group, 'alice'), { type: 'GroupResponse', group_id: group, members: ['alice'] })

      const add = await alice.client.addMembers(claimed)
      assert.deepEqual(await alice.commit(add), { type: 'CommitResponse', group_id: group, seq: 1, epoch: 1, message_type: 'Commit' })
      assert.deepEqual((await alice.api.getGroup(group)).members, ['alice', 'bob', 'carol'])
      assert.deepEqual(await dave.api.welcomes('dave'), [])

      await bob.joinFromInbox()
      await carol.joinFromInbox()
      const trio = [alice, bob, carol]
      await agree(trio)
      await chat(trio, 'hello')

      // Bob refreshes his keys.
      let answer = await bob.commit(await bob.client.selfUpdate())
      assert.equal(answer.type, 'CommitResponse', JSON.stringify(answer))
      assert.equal(answer.epoch, 2)
      await syncAll(trio)
      await agree(trio)

      // Alice removes Carol; the DS cannot see that inside the commit, so Carol leaves too.
      answer = await alice.commit(await alice.client.removeMember('carol'))
      assert.equal(answer.epoch, 3, JSON.stringify(answer))
      assert.deepEqual((await carol.api.call({ type: 'LeaveGroup', group_id: group, client_id: 'carol' })).members, ['alice', 'bob'])
      await bob.sync()
      const duo = [alice, bob]
      await agree(duo)
      assert.deepEqual(alice.client.members(), ['alice', 'bob'])
      const carolSpeaks = await carol.say('still here?')
      assert.deepEqual(carolSpeaks, { type: 'Error', message: 'Failed to relay message: Sender not in group: carol', code: 'not_member' })

      // Dave joins by a later commit, with the KeyPackage Alice claims for him.
      answer = await alice.commit(await alice.client.addMembers([await alice.api.claimBytes('dave', suite)]))
      assert.equal(answer.epoch, 4, JSON.stringify(answer))
      assert.deepEqual((await alice.api.getGroup(group)).members, ['alice', 'bob', 'dave'])
      await dave.joinFromInbox()
      await bob.sync()
      const current = [alice, bob, dave]
      await agree(current)
      await chat(current, 'welcome dave')
      assert.ok(!carol.received.some((l) => l.includes('welcome dave')))

      // Alice and Bob commit at epoch 4 at once, each on its own connection: exactly one wins.
      const [fromAlice, fromBob] = [await alice.client.selfUpdate(), await bob.client.selfUpdate()]
      assert.equal(fromAlice.epoch, 4n)
      assert.equal(fromBob.epoch, 4n)
      const answers = await Promise.all([alice.commit(fromAlice), bob.commit(fromBob)])
      assert.deepEqual(answers.map((a) => a.type).sort(), ['CommitResponse', 'Error'], JSON.stringify(answers))
      const loserIndex = answers.findIndex((a) => a.type === 'Error')
      const loser = loserIndex === 0 ? alice : bob
      const winnerBundle = loserIndex === 0 ? fromBob : fromAlice
      const refusal = answers[loserIndex]!
      assert.equal(refusal.code, 'stale_epoch')
      assert.equal(refusal.current_epoch, 5)
      assert.equal(refusal.message, 'Failed to commit: Stale epoch: the message is for epoch 4, the group is at epoch 5')
      assert.equal(answers[1 - loserIndex]!.epoch, 5)

      // The loser rolls back, catches up from the log and commits again.
      loser.client.rollback()
      assert.equal(loser.client.epoch, 4n)
      await syncAll(current)
      await agree(current)
      const retry = await loser.client.selfUpdate()
      assert.equal(retry.epoch, 5n)
      answer = await loser.commit(retry)
      assert.equal(answer.type, 'CommitResponse', JSON.stringify(answer))
      assert.equal(answer.epoch, 6)
      await syncAll(current)
      await agree(current)
      assert.equal(alice.client.epoch, 6n)
      await chat(current, 'after the race')

      // The log holds every accepted message with its epoch; only one Commit per epoch.
      const log = await alice.api.messages(group)
      assert.deepEqual(log.filter((m) => m.content_type === 'commit').map((m) => m.epoch), [0, 1, 2, 3, 4, 5])
      assert.ok(log.some((m) => hex(Uint8Array.from(m.message)) === hex(winnerBundle.commit)))
      assert.ok(log.every((m, i) => m.seq === i + 1))

      // The DS keeps the GroupInfo of the latest epoch.
      assert.deepEqual(await dave.api.groupInfo(group), {
        type: 'GroupInfoResponse',
        group_id: group,
        epoch: 6,
        group_info: bytes(retry.groupInfo),
        ratchet_tree: bytes(retry.ratchetTree),
      })
    })
  })
}
