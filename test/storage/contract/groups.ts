import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ANY_MEMBER, MEMBER, bytes, groupWith, message, openStore, text, T0, type StoreFactory, logOf } from './fixtures.js'

export function groupContract(factory: StoreFactory): void {
  describe('groups and their message log', () => {
    test('create, get, duplicate id refused, members in join order, add is idempotent, remove', async (t) => {
      const store = await openStore(t, factory)
      const created = await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 5, createdAt: T0 })
      assert.deepEqual(created, { groupId: 'g', creatorId: 'alice', createdAt: T0, epoch: 5, groupInfoEpoch: null, members: ['alice'], nextSeq: 1 })
      assert.equal(await store.createGroup({ groupId: 'g', creatorId: 'mallory', epoch: 0, createdAt: T0 }), undefined)
      assert.deepEqual(await store.getGroup('g'), created)
      assert.equal(await store.getGroup('nope'), undefined)
      await store.addMember('g', 'carol')
      await store.addMember('g', 'bob')
      assert.deepEqual((await store.addMember('g', 'carol'))?.members, ['alice', 'carol', 'bob'])
      assert.equal(await store.addMember('nope', 'bob'), undefined)
      assert.equal(await store.removeMember('g', 'carol'), 'removed')
      assert.equal(await store.removeMember('g', 'carol'), 'not_member')
      assert.equal(await store.removeMember('nope', 'carol'), 'no_group')
      assert.deepEqual((await store.addMember('g', 'carol'))?.members, ['alice', 'bob', 'carol'], 'a member who rejoins is last')
    })

    test('append: gap-free seqs, exact bytes, pages after a seq; refused for a missing group or a non-member', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice', 'bob'])
      assert.deepEqual(await store.appendMessage('nope', message('alice', 'x'), ANY_MEMBER), { ok: false, reason: 'no_group' })
      assert.deepEqual(await store.appendMessage('g', message('eve', 'x'), MEMBER), { ok: false, reason: 'not_member' })
      const raw = new Uint8Array([0, 1, 2, 255, 0])
      const first = await store.appendMessage('g', message('alice', 'x', { data: raw, messageType: 'Proposal', epoch: 0, contentType: 'proposal' }), MEMBER)
      assert.deepEqual(first, { ok: true, seq: 1, epoch: 0, messageType: 'Proposal', duplicate: false, recipients: ['bob'] })
      const second = await store.appendMessage('g', message('eve', 'opaque'), ANY_MEMBER)
      assert.ok(second.ok && second.seq === 2)
      assert.deepEqual([...second.recipients].sort(), ['alice', 'bob'])
      for (let i = 3; i <= 5; i++) await store.appendMessage('g', message('bob', `m${i}`), MEMBER)
      const all = await logOf(store, 'g', 0, 100)
      assert.deepEqual(all?.map((m) => m.seq), [1, 2, 3, 4, 5])
      assert.deepEqual(all?.[0], { senderId: 'alice', messageType: 'Proposal', data: raw, receivedAt: T0, epoch: 0, contentType: 'proposal', seq: 1 })
      assert.deepEqual((await logOf(store, 'g', 2, 2))?.map((m) => text(m.data)), ['m3', 'm4'])
      assert.deepEqual(await logOf(store, 'g', 5, 10), [])
      assert.equal(await logOf(store, 'nope', 0, 10), undefined)
      assert.equal((await store.getGroup('g'))?.nextSeq, 6)
    })

    test('keeps copies: bytes the caller changes after an append are not what is stored or delivered', async (t) => {
      // The REST door decodes relayed messages into Buffer's shared pool, reused by later requests.
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice', 'bob'])
      const data = bytes('a relayed Welcome')
      const appended = await store.appendMessage('g', message('alice', 'x', { data, messageType: 'Welcome', contentType: 'welcome' }), MEMBER, { welcome: { data, recipients: ['carol'] } })
      assert.ok(appended.ok)
      data.fill(0x2a)
      assert.deepEqual((await logOf(store, 'g', 0, 10))?.map((m) => text(m.data)), ['a relayed Welcome'])
      assert.deepEqual((await store.readWelcomes('carol', 0, 10, T0)).map((w) => text(w.data)), ['a relayed Welcome'])
      for (const client of ['bob', 'carol']) {
        assert.deepEqual((await store.readDeliveries(client, 0, 10, T0)).deliveries.map((d) => text(d.data)), ['a relayed Welcome'], client)
      }
    })

    test('delete removes the group and its log; a new group with the same id starts again at seq 1', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice'])
      await store.appendMessage('g', message('alice', 'one'), MEMBER)
      assert.equal(await store.deleteGroup('g'), true)
      assert.equal(await store.deleteGroup('g'), false)
      assert.equal(await store.getGroup('g'), undefined)
      await groupWith(store, 'g', ['bob'])
      assert.deepEqual(await logOf(store, 'g', 0, 10), [])
      const again = await store.appendMessage('g', message('bob', 'one'), MEMBER)
      assert.ok(again.ok && again.seq === 1)
    })

    test('queued deliveries outlive their deleted group, with their bytes, beside those of a new group of the same id', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice', 'bob'])
      for (const label of ['one', 'two']) await store.appendMessage('g', message('alice', label), MEMBER)
      assert.equal(await store.deleteGroup('g'), true)
      await groupWith(store, 'g', ['alice', 'bob'])
      await store.appendMessage('g', message('alice', 'new one'), MEMBER)
      const page = await store.readDeliveries('bob', 0, 10, T0)
      assert.deepEqual(page.deliveries.map((d) => [d.groupSeq, text(d.data)]), [[1, 'one'], [2, 'two'], [1, 'new one']])
      assert.deepEqual((await logOf(store, 'g', 0, 10))?.map((m) => text(m.data)), ['new one'])
    })

    test('epoch condition: a stale message is refused with the current epoch; a commit advances it', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice', 'bob'], 3)
      const stale = await store.appendMessage('g', message('alice', 'c', { epoch: 2 }), { ...MEMBER, epoch: { expected: 2, advance: true } })
      assert.deepEqual(stale, { ok: false, reason: 'stale_epoch', currentEpoch: 3 })
      const commit = await store.appendMessage('g', message('alice', 'c', { epoch: 3, messageType: 'Commit', contentType: 'commit' }), { ...MEMBER, epoch: { expected: 3, advance: true } })
      assert.ok(commit.ok && commit.epoch === 4 && commit.seq === 1)
      const app = await store.appendMessage('g', message('bob', 'a', { epoch: 4 }), { ...MEMBER, epoch: { expected: 4, advance: false } })
      assert.ok(app.ok && app.epoch === 4)
      assert.equal((await store.getGroup('g'))?.epoch, 4)
    })

    test('commit effects: GroupInfo kept, Welcome recipients join, get the Welcome in inbox and queue; none on refusal', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice', 'bob'])
      const info = { epoch: 1, data: bytes('info'), ratchetTree: bytes('tree'), storedAt: T0 }
      const effects = { groupInfo: info, welcome: { data: bytes('welcome'), recipients: ['carol', 'dave'] } }
      const refused = await store.appendMessage('g', message('alice', 'c'), { ...MEMBER, epoch: { expected: 7, advance: true } }, effects)
      assert.equal(refused.ok, false)
      assert.deepEqual((await store.getGroup('g'))?.members, ['alice', 'bob'])
      assert.equal(await store.getGroupInfo('g'), undefined)
      assert.deepEqual(await store.readWelcomes('carol', 0, 10, T0), [])
      assert.equal((await store.readDeliveries('carol', 0, 10, T0)).lastSeq, 0)

      const accepted = await store.appendMessage('g', message('alice', 'c', { epoch: 0, messageType: 'Commit', contentType: 'commit' }), { ...MEMBER, epoch: { expected: 0, advance: true } }, effects)
      assert.ok(accepted.ok)
      assert.deepEqual([...accepted.recipients].sort(), ['bob', 'carol', 'dave'])
      const group = await store.getGroup('g')
      assert.deepEqual(group?.members, ['alice', 'bob', 'carol', 'dave'])
      assert.equal(group?.groupInfoEpoch, 1)
      assert.deepEqual(await store.getGroupInfo('g'), info)
      assert.deepEqual(await store.readWelcomes('carol', 0, 10, T0), [{ seq: 1, groupId: 'g', senderId: 'alice', data: bytes('welcome'), receivedAt: T0 }])
      const carol = await store.readDeliveries('carol', 0, 10, T0)
      assert.deepEqual(carol.deliveries, [{ seq: 1, groupId: 'g', groupSeq: 1, senderId: 'alice', kind: 'welcome', messageType: 'Welcome', epoch: null, contentType: 'welcome', data: bytes('welcome'), receivedAt: T0 }])
      const bob = await store.readDeliveries('bob', 0, 10, T0)
      assert.deepEqual(bob.deliveries.map((d) => [d.kind, d.messageType, text(d.data)]), [['message', 'Commit', 'c']])
      assert.equal(await store.getGroupInfo('nope'), undefined)

      await groupWith(store, 'h', ['erin'])
      await store.appendMessage('h', message('erin', 'c2'), ANY_MEMBER, { welcome: { data: bytes('w2'), recipients: ['carol'] } })
      assert.deepEqual((await store.readWelcomes('carol', 0, 10, T0)).map((w) => [w.seq, w.groupId]), [[1, 'g'], [2, 'h']])
      assert.deepEqual((await store.readWelcomes('carol', 1, 10, T0)).map((w) => w.seq), [2])
      assert.deepEqual((await store.readWelcomes('carol', 0, 1, T0)).map((w) => w.seq), [1])
    })

    test('an external commit: its sender joins after it (not a recipient), with the GroupInfo it brings; nothing on refusal; a retry joins no one again', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice', 'bob'], 2)
      const commit = message('carol', 'ext', { epoch: 2, messageType: 'Commit', contentType: 'commit' })
      const condition = { senderMustBeMember: false, epoch: { expected: 2, advance: true }, retry: { sameBytes: true } }
      const info = { epoch: 3, data: bytes('info-3'), ratchetTree: bytes('tree-3'), storedAt: T0 }
      const stale = await store.appendMessage('g', commit, { ...condition, epoch: { expected: 1, advance: true } }, { senderJoins: true, groupInfo: info })
      assert.deepEqual(stale, { ok: false, reason: 'stale_epoch', currentEpoch: 2 })
      assert.deepEqual((await store.getGroup('g'))?.members, ['alice', 'bob'], 'a refused external commit joins no one')

      const accepted = await store.appendMessage('g', commit, condition, { senderJoins: true, groupInfo: info })
      assert.ok(accepted.ok && !accepted.duplicate && accepted.epoch === 3)
      assert.deepEqual([...accepted.recipients].sort(), ['alice', 'bob'])
      const group = await store.getGroup('g')
      assert.deepEqual(group?.members, ['alice', 'bob', 'carol'])
      assert.equal(group?.groupInfoEpoch, 3)
      assert.equal((await store.readDeliveries('carol', 0, 10, T0)).lastSeq, 0, 'the joiner is not sent its own commit')

      const retry = await store.appendMessage('g', commit, condition, { senderJoins: true })
      assert.ok(retry.ok && retry.duplicate && retry.seq === accepted.seq)
      // A member that resyncs (RFC 9420 §12.4.3.2, its old leaf removed) stays listed once.
      const resync = await store.appendMessage('g', message('bob', 'resync', { epoch: 3, messageType: 'Commit', contentType: 'commit' }), { ...condition, epoch: { expected: 3, advance: true } }, { senderJoins: true })
      assert.ok(resync.ok)
      assert.deepEqual([...resync.recipients].sort(), ['alice', 'carol'])
      assert.deepEqual((await store.getGroup('g'))?.members, ['alice', 'bob', 'carol'])
    })

    test('idempotency: a retry returns the original result, checked before the epoch; keys expire with the window', async (t) => {
      const store = await openStore(t, factory, { idempotencyWindowMs: 60_000 })
      await groupWith(store, 'g', ['alice', 'bob'])
      const condition = { ...MEMBER, epoch: { expected: 0, advance: true }, retry: { sameBytes: false, key: 'k1' } }
      const first = await store.appendMessage('g', message('alice', 'c'), condition)
      assert.deepEqual(first, { ok: true, seq: 1, epoch: 1, messageType: 'Application', duplicate: false, recipients: ['bob'] })
      const retry = await store.appendMessage('g', message('alice', 'other bytes', { receivedAt: T0 + 1000 }), condition)
      assert.deepEqual(retry, { ok: true, seq: 1, epoch: 1, messageType: 'Application', duplicate: true, recipients: [] })
      assert.equal((await logOf(store, 'g', 0, 10))?.length, 1)
      assert.equal((await store.readDeliveries('bob', 0, 10, T0)).lastSeq, 1, 'a retry delivers nothing')
      await groupWith(store, 'h', ['alice'])
      const otherGroup = await store.appendMessage('h', message('alice', 'c'), { ...MEMBER, retry: { sameBytes: false, key: 'k1' } })
      assert.ok(otherGroup.ok && !otherGroup.duplicate, 'keys are per group')
      const late = await store.appendMessage('g', message('alice', 'c', { receivedAt: T0 + 61_000 }), { ...MEMBER, retry: { sameBytes: false, key: 'k1' } })
      assert.ok(late.ok && !late.duplicate && late.seq === 2, 'after the window the key is forgotten')
    })

    test('idempotency: the same bytes are a retry only from the same sender, and only when asked', async (t) => {
      const store = await openStore(t, factory, { idempotencyWindowMs: 60_000 })
      await groupWith(store, 'g', ['alice', 'bob'])
      const bytesOnly = { ...MEMBER, retry: { sameBytes: true } }
      assert.ok((await store.appendMessage('g', message('alice', 'mls'), bytesOnly)).ok)
      const again = await store.appendMessage('g', message('alice', 'mls', { receivedAt: T0 + 59_999 }), { ...MEMBER, retry: { sameBytes: true, key: 'new key' } })
      assert.ok(again.ok && again.duplicate && again.seq === 1, 'the same bytes again, with a key never seen')
      const fromBob = await store.appendMessage('g', message('bob', 'mls'), bytesOnly)
      assert.ok(fromBob.ok && !fromBob.duplicate && fromBob.seq === 2, 'the same bytes from another sender are a message of their own')
      const opaque = await store.appendMessage('g', message('alice', 'mls'), { ...MEMBER, retry: { sameBytes: false } })
      assert.ok(opaque.ok && !opaque.duplicate && opaque.seq === 3, 'bytes are compared only when sameBytes is set')
      const longer = await store.appendMessage('g', message('alice', 'mls!'), bytesOnly)
      assert.ok(longer.ok && !longer.duplicate && longer.seq === 4)
      const late = await store.appendMessage('g', message('alice', 'mls', { receivedAt: T0 + 60_001 }), bytesOnly)
      assert.ok(late.ok && !late.duplicate && late.seq === 5, 'after the window the bytes are forgotten')
      const lateAgain = await store.appendMessage('g', message('alice', 'mls', { receivedAt: T0 + 60_002 }), bytesOnly)
      assert.ok(lateAgain.ok && lateAgain.duplicate && lateAgain.seq === 5, 'and the new message is remembered')
    })

    test('idempotency: a client key belongs to its sender, whatever the ids contain', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['a', 'a:b', 'mallory'])
      // Joined with a colon, sender a:b with key c and sender a with key b:c would read alike.
      const first = await store.appendMessage('g', message('a:b', 'one'), { ...MEMBER, retry: { sameBytes: false, key: 'c' } })
      const second = await store.appendMessage('g', message('a', 'two'), { ...MEMBER, retry: { sameBytes: false, key: 'b:c' } })
      assert.ok(first.ok && second.ok && !second.duplicate && second.seq === 2)
      const third = await store.appendMessage('g', message('mallory', 'three'), { ...MEMBER, retry: { sameBytes: false, key: 'b:c' } })
      assert.ok(third.ok && !third.duplicate && third.seq === 3, 'another sender may use the same key')
      const retry = await store.appendMessage('g', message('a', 'two'), { ...MEMBER, retry: { sameBytes: false, key: 'b:c' } })
      assert.ok(retry.ok && retry.duplicate && retry.seq === 2)
      assert.deepEqual((await logOf(store, 'g', 0, 10))?.map((m) => [m.senderId, text(m.data)]), [['a:b', 'one'], ['a', 'two'], ['mallory', 'three']])
    })
  })
}
