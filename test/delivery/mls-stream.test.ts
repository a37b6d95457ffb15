import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { MlsTestClient } from '../helpers/mls-client.js'
import { b64, unb64 } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { StreamClient, type StreamFrame } from '../helpers/stream-client.js'

const GROUP = 'stream-only'

/** An MLS client that learns everything from its live stream: no polling of any kind. */
class StreamMember {
  #next = 0
  readonly texts: string[] = []
  constructor(readonly name: string, readonly mls: MlsTestClient, readonly stream: StreamClient) {}

  async nextDelivery(): Promise<StreamFrame> {
    await this.stream.waitFor(() => this.stream.deliveries.length > this.#next, `${this.name}'s next delivery`)
    return this.stream.deliveries[this.#next++]!
  }

  async joinFromStream(): Promise<void> {
    const delivery = await this.nextDelivery()
    assert.equal(delivery.kind, 'welcome', `${this.name} expected its Welcome first`)
    await this.mls.joinFromWelcome(unb64(String(delivery.message)))
  }

  /** Processes deliveries in order until `count` more have been handled. */
  async process(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const delivery = await this.nextDelivery()
      assert.equal(delivery.kind, 'message')
      const received = await this.mls.receive(unb64(String(delivery.message)))
      if (received.kind === 'application') this.texts.push(received.text)
    }
  }
}

describe('the MLS flow with every client receiving only through its WebSocket stream', () => {
  const service = useTestService()

  test('join, talk, update, add: everyone decrypts from the stream and agrees on the epoch', async () => {
    const names = ['alice', 'bob', 'carol', 'dave'] as const
    const members = {} as Record<(typeof names)[number], StreamMember>
    for (const name of names) {
      const mls = await MlsTestClient.create(name, 1)
      if (name !== 'alice') assert.equal((await service.api.putKeyPackages(name, [(await mls.createKeyPackage()).bytes])).status, 200)
      members[name] = new StreamMember(name, mls, await StreamClient.connect(service.running.httpPort, name))
    }
    const { alice, bob, carol, dave } = members

    await alice.mls.createGroup(GROUP)
    assert.equal((await service.api.createGroup(GROUP, 'alice')).status, 201)
    const add = await alice.mls.addMembers([await service.api.claimBytes('bob'), await service.api.claimBytes('carol')], { ratchetTreeExtension: true })
    assert.equal((await service.api.commit(GROUP, 'alice', add)).status, 201)
    await bob.joinFromStream()
    await carol.joinFromStream()

    const say = async (member: StreamMember, text: string) => {
      const res = await service.api.send(GROUP, member.name, await member.mls.sendApplication(text))
      assert.equal(res.status, 201, JSON.stringify(res.body))
    }
    await say(alice, 'hi from alice')
    await say(bob, 'hi from bob')
    await say(carol, 'hi from carol')
    await alice.process(2)
    await bob.process(2)
    await carol.process(2)
    assert.deepEqual(alice.texts, ['hi from bob', 'hi from carol'])
    assert.deepEqual(bob.texts, ['hi from alice', 'hi from carol'])
    assert.deepEqual(carol.texts, ['hi from alice', 'hi from bob'])

    const update = await bob.mls.selfUpdate()
    assert.equal((await service.api.commit(GROUP, 'bob', update)).status, 201)
    await alice.process(1)
    await carol.process(1)

    const addDave = await alice.mls.addMembers([await service.api.claimBytes('dave')], { ratchetTreeExtension: true })
    assert.equal((await service.api.commit(GROUP, 'alice', addDave)).status, 201)
    await bob.process(1)
    await carol.process(1)
    await dave.joinFromStream()

    await say(dave, 'dave is here')
    for (const member of [alice, bob, carol]) {
      await member.process(1)
      assert.equal(member.texts.at(-1), 'dave is here')
    }
    const authenticators = names.map((n) => b64(members[n].mls.epochAuthenticator()))
    assert.equal(new Set(authenticators).size, 1, 'all members agree on the epoch authenticator')
    assert.equal(members.alice.mls.epoch, 3n)
    for (const member of Object.values(members)) await member.stream.close()
  })

  test('members that send on their stream too: MLS messages and a Commit as send frames, a stale one refused with current_epoch', async () => {
    const group = 'stream-send'
    const alice = new StreamMember('alice2', await MlsTestClient.create('alice2', 1), await StreamClient.connect(service.running.httpPort, 'alice2'))
    const bob = new StreamMember('bob2', await MlsTestClient.create('bob2', 1), await StreamClient.connect(service.running.httpPort, 'bob2'))
    assert.equal((await service.api.putKeyPackages('bob2', [(await bob.mls.createKeyPackage()).bytes])).status, 200)
    await alice.mls.createGroup(group)
    assert.equal((await service.api.createGroup(group, 'alice2')).status, 201)
    assert.equal((await service.api.commit(group, 'alice2', await alice.mls.addMembers([await service.api.claimBytes('bob2')], { ratchetTreeExtension: true }))).status, 201)
    await bob.joinFromStream()

    let n = 0
    const send = (member: StreamMember, bytes: Uint8Array) => member.stream.ask({ type: 'send', id: ++n, group_id: group, message: b64(bytes) })
    assert.deepEqual(await send(bob, await bob.mls.sendApplication('hi alice')), { type: 'sent', id: n, group_id: group, seq: 2, epoch: 1, message_type: 'Application' })
    await alice.process(1)
    assert.deepEqual(alice.texts, ['hi alice'])

    // Bob prepares a message for epoch 1; Alice's self-update moves the group to epoch 2 first.
    const late = await bob.mls.sendApplication('too late')
    const update = await alice.mls.selfUpdate()
    const sent = await send(alice, update.commit)
    assert.equal(sent.type, 'sent', JSON.stringify(sent))
    assert.equal(sent.message_type, 'Commit')
    assert.equal(sent.epoch, 2)
    const refused = await send(bob, late)
    assert.equal(refused.error, 'stale_epoch', JSON.stringify(refused))
    assert.equal(refused.current_epoch, 2)
    await bob.process(1)
    assert.equal((await send(bob, await bob.mls.sendApplication('epoch 2 now'))).type, 'sent')
    await alice.process(1)
    assert.deepEqual(alice.texts, ['hi alice', 'epoch 2 now'])
    assert.equal(b64(alice.mls.epochAuthenticator()), b64(bob.mls.epochAuthenticator()))
    // Bytes that are not MLS are refused on the stream as on REST (MLS_VALIDATION=strict).
    const junk = await send(alice, new TextEncoder().encode('plain text'))
    assert.equal(junk.error, 'invalid_message')
    assert.equal(junk.check, 'not_mls')
    await alice.stream.close()
    await bob.stream.close()
  })
})
