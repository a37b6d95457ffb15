import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { Store } from '../../../src/storage/store.js'
import { MEMBER, bytes, groupWith, message, openStore, text, T0, type StoreFactory } from './fixtures.js'

const SECOND = 1000
/** Queues keep deliveries 10 s here: a purge drops only messages older than that (GROUP_LOG_MAX_AGE >= QUEUE_MAX_AGE). */
const QUEUE_AGE = 10 * SECOND
const OPTIONS = { idempotencyWindowMs: SECOND, retention: { maxMessages: 10_000, maxAgeMs: QUEUE_AGE } }

/** Every purge batch until the store has nothing more to drop; the total dropped. */
async function purgeAll(store: Store, before: number): Promise<number> {
  let total = 0
  for (let dropped = await store.purgeGroupLogs(before); dropped > 0; dropped = await store.purgeGroupLogs(before)) total += dropped
  return total
}

/** The group's log from the start: the seqs it keeps, their texts, and its first seq. */
async function logFrom(store: Store, groupId: string, after = 0): Promise<{ seqs: number[]; texts: string[]; firstSeq: number }> {
  const page = await store.readMessages(groupId, after, 1000)
  assert.ok(page, `group ${groupId}`)
  return { seqs: page.messages.map((m) => m.seq), texts: page.messages.map((m) => text(m.data)), firstSeq: page.firstSeq }
}

/** A client's queue as read at `now`: the texts in it, and the gap reported. */
async function queueAt(store: Store, clientId: string, now: number, after = 0): Promise<{ texts: string[]; gap?: { missedFrom: number; firstAvailableSeq: number } }> {
  const page = await store.readDeliveries(clientId, after, 1000, now)
  return { texts: page.deliveries.map((d) => text(d.data)), ...(page.gap ? { gap: page.gap } : {}) }
}

export function logRetentionContract(factory: StoreFactory): void {
  describe("group logs: dropping a log's oldest messages (GROUP_LOG_MAX_AGE)", () => {
    test('drops the messages received before a time from every group, oldest first; seqs, the first seq kept and the next seq follow', async (t) => {
      const store = await openStore(t, factory, OPTIONS)
      await groupWith(store, 'g1', ['alice', 'bob'])
      await groupWith(store, 'g2', ['carol', 'bob'])
      await groupWith(store, 'quiet', ['alice'])
      for (const [i, at] of [0, 10, 20].entries()) await store.appendMessage('g1', message('alice', `g1 m${i + 1}`, { receivedAt: T0 + at * SECOND }), MEMBER)
      for (const [i, at] of [5, 50].entries()) await store.appendMessage('g2', message('carol', `g2 m${i + 1}`, { receivedAt: T0 + at * SECOND }), MEMBER)
      assert.deepEqual(await logFrom(store, 'g1'), { seqs: [1, 2, 3], texts: ['g1 m1', 'g1 m2', 'g1 m3'], firstSeq: 1 })
      assert.deepEqual(await logFrom(store, 'quiet'), { seqs: [], texts: [], firstSeq: 1 }, 'an empty log starts at its next seq')

      assert.equal(await purgeAll(store, T0 + 15 * SECOND), 3)
      assert.deepEqual(await logFrom(store, 'g1'), { seqs: [3], texts: ['g1 m3'], firstSeq: 3 })
      assert.deepEqual(await logFrom(store, 'g2'), { seqs: [2], texts: ['g2 m2'], firstSeq: 2 })
      assert.deepEqual(await logFrom(store, 'g1', 1), { seqs: [3], texts: ['g1 m3'], firstSeq: 3 }, 'a read after a dropped seq starts at the first kept')
      assert.deepEqual(await logFrom(store, 'g1', 3), { seqs: [], texts: [], firstSeq: 3 })
      assert.equal(await store.purgeGroupLogs(T0 + 15 * SECOND), 0, 'nothing more before that time')

      // The group goes on where it was.
      const next = await store.appendMessage('g1', message('alice', 'g1 m4', { receivedAt: T0 + 60 * SECOND }), MEMBER)
      assert.ok(next.ok && next.seq === 4)
      assert.equal((await store.getGroup('g1'))?.nextSeq, 5)
      // Bob's queue, read once the dropped messages are past its age (as they are whenever a
      // purge takes them), says what he missed and holds the rest, bytes and all, on every store.
      const later = T0 + 60 * SECOND
      assert.deepEqual(await queueAt(store, 'bob', later), { texts: ['g2 m2', 'g1 m4'], gap: { missedFrom: 1, firstAvailableSeq: 5 } })

      // Everything old enough goes: the log is empty and starts at its next seq.
      assert.equal(await purgeAll(store, T0 + 100 * SECOND), 3)
      assert.deepEqual(await logFrom(store, 'g1'), { seqs: [], texts: [], firstSeq: 5 })
      assert.deepEqual(await logFrom(store, 'g2'), { seqs: [], texts: [], firstSeq: 3 })
      const after = await store.appendMessage('g2', message('carol', 'g2 m3', { receivedAt: T0 + 200 * SECOND }), MEMBER)
      assert.ok(after.ok && after.seq === 3)
      assert.deepEqual(await logFrom(store, 'g2'), { seqs: [3], texts: ['g2 m3'], firstSeq: 3 })
      assert.deepEqual(await queueAt(store, 'bob', T0 + 200 * SECOND, 6), { texts: ['g2 m3'] })
      // A purged group can still be deleted.
      assert.equal(await store.deleteGroup('g1'), true)
      assert.equal(await store.readMessages('g1', 0, 10), undefined)
    })

    test('Welcomes queued for the joiners of a dropped commit keep their own bytes', async (t) => {
      const store = await openStore(t, factory, { ...OPTIONS, retention: { maxMessages: 10_000, maxAgeMs: 1000 * SECOND } })
      await groupWith(store, 'g', ['alice', 'bob'])
      const commit = await store.appendMessage('g', message('alice', 'commit', { messageType: 'Commit', epoch: 0, contentType: 'commit', receivedAt: T0 }),
        { ...MEMBER, epoch: { expected: 0, advance: true } }, { welcome: { data: bytes('welcome for carol'), recipients: ['carol'] } })
      assert.ok(commit.ok)
      assert.equal(await purgeAll(store, T0 + SECOND), 1)
      assert.deepEqual(await queueAt(store, 'carol', T0 + SECOND), { texts: ['welcome for carol'] })
      assert.deepEqual((await store.readWelcomes('carol', 0, 10, T0 + SECOND)).map((w) => text(w.data)), ['welcome for carol'])
    })

    test('a log drops a prefix: its first young message stops the drop, however old those after it are', async (t) => {
      const store = await openStore(t, factory, OPTIONS)
      await groupWith(store, 'g', ['alice', 'bob'])
      // Accepted out of time order (receivedAt is read before the append, or on an instance
      // whose clock is behind): seq 2 is older than seq 1.
      for (const [label, at] of [['first', 10], ['second', 9], ['third', 30]] as const) {
        await store.appendMessage('g', message('alice', label, { receivedAt: T0 + at * SECOND }), MEMBER)
      }
      assert.equal(await purgeAll(store, T0 + 9.5 * SECOND), 0)
      assert.deepEqual((await logFrom(store, 'g')).seqs, [1, 2, 3])
      assert.equal(await purgeAll(store, T0 + 20 * SECOND), 2)
      assert.deepEqual(await logFrom(store, 'g'), { seqs: [3], texts: ['third'], firstSeq: 3 })

      // One message stamped days before the rest (a clock far behind) takes nothing with it.
      await groupWith(store, 'skewed', ['alice'])
      for (let i = 0; i < 20; i++) await store.appendMessage('skewed', message('alice', `now ${i}`, { receivedAt: T0 + 1000 * SECOND }), MEMBER)
      await store.appendMessage('skewed', message('alice', 'stamped long ago', { receivedAt: T0 - 2 * 86400 * SECOND }), MEMBER)
      assert.equal(await purgeAll(store, T0 + 500 * SECOND), 1, "only g's last message")
      assert.equal((await logFrom(store, 'skewed')).seqs.length, 21)
      assert.equal(await purgeAll(store, T0 + 2000 * SECOND), 21)
    })

    test('large logs go in batches until done; a retry within the window finds a kept original, after it is a new message', async (t) => {
      const store = await openStore(t, factory, OPTIONS)
      await groupWith(store, 'big', ['alice', 'bob'])
      await groupWith(store, 'small', ['alice'])
      for (let i = 0; i < 2500; i++) await store.appendMessage('big', message('alice', `m${i}`, { receivedAt: T0 + i }), { ...MEMBER, retry: { sameBytes: true } })
      await store.appendMessage('small', message('alice', 'old', { receivedAt: T0 }), MEMBER)
      const batches: number[] = []
      for (let dropped = await store.purgeGroupLogs(T0 + 2400); dropped > 0; dropped = await store.purgeGroupLogs(T0 + 2400)) batches.push(dropped)
      assert.equal(batches.reduce((a, b) => a + b, 0), 2401)
      assert.deepEqual((await logFrom(store, 'big')).firstSeq, 2401)
      assert.deepEqual((await logFrom(store, 'big')).seqs.length, 100)
      assert.deepEqual(await logFrom(store, 'small'), { seqs: [], texts: [], firstSeq: 2 })
      const retry = await store.appendMessage('big', message('alice', 'm2499', { receivedAt: T0 + 2500 }), { ...MEMBER, retry: { sameBytes: true } })
      assert.ok(retry.ok && retry.duplicate && retry.seq === 2500, 'a kept message within the window is still found')
      const again = await store.appendMessage('big', message('alice', 'm0', { receivedAt: T0 + 5000 }), { ...MEMBER, retry: { sameBytes: true } })
      assert.ok(again.ok && !again.duplicate && again.seq === 2501, 'the dropped original is out of the window: a message of its own')
    })
  })
}
