import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { DeliveryPage, Store } from '../../../src/storage/store.js'
import { ANY_MEMBER, MEMBER, bytes, groupWith, message, openStore, text, T0, type StoreFactory, logOf } from './fixtures.js'

const HOUR = 3600_000

/** A Commit in a group of its own, with a Welcome for `recipient`. */
async function welcome(store: Store, recipient: string, label: string, receivedAt = T0): Promise<void> {
  await groupWith(store, label, ['alice'])
  const result = await store.appendMessage(label, message('alice', `commit ${label}`, { receivedAt }), ANY_MEMBER, { welcome: { data: bytes(label), recipients: [recipient] } })
  if (!result.ok) throw new Error(`welcome ${label} refused`)
}

const inbox = async (store: Store, clientId: string, after: number, now: number) =>
  (await store.readWelcomes(clientId, after, 100, now)).map((w) => [w.seq, w.groupId, text(w.data)])

export function queueContract(factory: StoreFactory): void {
  describe('per-client delivery queues', () => {
    test('one queue across groups with its own gap-free seq; the sender gets no copy; pages after a seq', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g1', ['x', 'reader'])
      await groupWith(store, 'g2', ['y', 'reader'])
      await store.appendMessage('g1', message('x', 'one'), MEMBER)
      await store.appendMessage('g2', message('y', 'two', { epoch: 4, contentType: 'application' }), MEMBER)
      await store.appendMessage('g1', message('x', 'three'), MEMBER)
      const page = await store.readDeliveries('reader', 0, 2, T0)
      assert.equal(page.gap, undefined)
      assert.equal(page.lastSeq, 3)
      assert.deepEqual(page.deliveries[1], { seq: 2, groupId: 'g2', groupSeq: 1, senderId: 'y', kind: 'message', messageType: 'Application', epoch: 4, contentType: 'application', data: new TextEncoder().encode('two'), receivedAt: T0 })
      assert.deepEqual(page.deliveries.map((d) => [d.seq, d.groupId, d.groupSeq]), [[1, 'g1', 1], [2, 'g2', 1]])
      assert.deepEqual((await store.readDeliveries('reader', 2, 10, T0)).deliveries.map((d) => text(d.data)), ['three'])
      assert.deepEqual(await store.readDeliveries('x', 0, 10, T0), { deliveries: [], lastSeq: 0 }, 'x only sent')
      assert.deepEqual(await store.readDeliveries('nobody', 0, 10, T0), { deliveries: [], lastSeq: 0 })
    })

    test('members at the moment of acceptance get it; a member who left gets nothing more', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['a', 'b', 'c'])
      await store.appendMessage('g', message('a', 'one'), MEMBER)
      await store.removeMember('g', 'c')
      const second = await store.appendMessage('g', message('a', 'two'), MEMBER)
      assert.ok(second.ok)
      assert.deepEqual(second.recipients, ['b'])
      assert.equal((await store.readDeliveries('c', 0, 10, T0)).lastSeq, 1)
      assert.equal((await store.readDeliveries('b', 0, 10, T0)).lastSeq, 2)
    })

    test('ack drops a prefix; an older ack changes nothing; beyond the last delivery is refused', async (t) => {
      const store = await openStore(t, factory)
      assert.deepEqual(await store.ackDeliveries('nobody', 0), { ok: true, ackedUpTo: 0, remaining: 0 })
      assert.deepEqual(await store.ackDeliveries('nobody', 1), { ok: false, lastSeq: 0 })
      await groupWith(store, 'g', ['a', 'b'])
      for (let i = 1; i <= 4; i++) await store.appendMessage('g', message('a', `m${i}`), MEMBER)
      assert.deepEqual(await store.ackDeliveries('b', 2), { ok: true, ackedUpTo: 2, remaining: 2 })
      assert.deepEqual(await store.ackDeliveries('b', 1), { ok: true, ackedUpTo: 2, remaining: 2 })
      assert.deepEqual(await store.ackDeliveries('b', 5), { ok: false, lastSeq: 4 })
      const page = await store.readDeliveries('b', 0, 10, T0)
      assert.equal(page.gap, undefined, 'acknowledged deliveries are not a gap')
      assert.deepEqual(page.deliveries.map((d) => d.seq), [3, 4])
      assert.deepEqual(await store.ackDeliveries('b', 4), { ok: true, ackedUpTo: 4, remaining: 0 })
      await store.appendMessage('g', message('a', 'm5'), MEMBER)
      assert.deepEqual((await store.readDeliveries('b', 4, 10, T0)).deliveries.map((d) => d.seq), [5], 'seqs go on after an emptied queue')
    })

    test('retention by count: the oldest go first, and a reader behind them is told of the gap', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 3, maxAgeMs: 24 * HOUR } })
      await groupWith(store, 'g', ['a', 'b'])
      for (let i = 1; i <= 5; i++) await store.appendMessage('g', message('a', `m${i}`), MEMBER)
      const page = await store.readDeliveries('b', 0, 10, T0)
      assert.deepEqual(page.gap, { missedFrom: 1, firstAvailableSeq: 3 })
      assert.deepEqual(page.deliveries.map((d) => d.seq), [3, 4, 5])
      assert.equal(page.lastSeq, 5)
      assert.deepEqual((await store.readDeliveries('b', 2, 10, T0)).gap, undefined, 'a reader at the drop point missed nothing')
      assert.deepEqual(await store.ackDeliveries('b', 5), { ok: true, ackedUpTo: 5, remaining: 0 })
      assert.equal((await logOf(store, 'g', 0, 10))?.length, 5, 'the group log is not a queue')
    })

    test('retention by age, at append time and at read time; acknowledged drops are no gap', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 100, maxAgeMs: HOUR } })
      await groupWith(store, 'g', ['a', 'b', 'c'])
      await store.appendMessage('g', message('a', 'old'), ANY_MEMBER)
      await store.appendMessage('g', message('a', 'newer', { receivedAt: T0 + 30 * 60_000 }), ANY_MEMBER)
      await store.ackDeliveries('c', 1)
      await store.appendMessage('g', message('a', 'late', { receivedAt: T0 + HOUR + 1 }), ANY_MEMBER)
      assert.deepEqual(await store.ackDeliveries('b', 0), { ok: true, ackedUpTo: 0, remaining: 2 }, 'the old one was dropped on append')
      const page = await store.readDeliveries('b', 0, 10, T0 + HOUR + 1)
      assert.deepEqual(page.gap, { missedFrom: 1, firstAvailableSeq: 2 })
      assert.deepEqual(page.deliveries.map((d) => text(d.data)), ['newer', 'late'])
      assert.equal((await store.readDeliveries('c', 0, 10, T0 + HOUR + 1)).gap, undefined)
      const later = await store.readDeliveries('b', 1, 10, T0 + 2 * HOUR)
      assert.deepEqual(later.gap, { missedFrom: 2, firstAvailableSeq: 3 })
      assert.deepEqual(later.deliveries.map((d) => d.seq), [3])
      assert.equal(later.lastSeq, 3)
    })

    test('several reads at once answer each as readDeliveries does, in the order asked', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 3, maxAgeMs: HOUR } })
      await groupWith(store, 'g', ['a', 'b', 'c'])
      for (let i = 1; i <= 5; i++) await store.appendMessage('g', message('a', `m${i}`), MEMBER)
      const summary = (page: DeliveryPage) => ({ seqs: page.deliveries.map((d) => d.seq), texts: page.deliveries.map((d) => text(d.data)), gap: page.gap, lastSeq: page.lastSeq })
      const pages = await store.readDeliveryPages([{ clientId: 'b', after: 0 }, { clientId: 'nobody', after: 0 }, { clientId: 'c', after: 3 }, { clientId: 'b', after: 4 }], 10, T0)
      assert.deepEqual(pages.map(summary), [
        { seqs: [3, 4, 5], texts: ['m3', 'm4', 'm5'], gap: { missedFrom: 1, firstAvailableSeq: 3 }, lastSeq: 5 },
        { seqs: [], texts: [], gap: undefined, lastSeq: 0 },
        { seqs: [4, 5], texts: ['m4', 'm5'], gap: undefined, lastSeq: 5 },
        { seqs: [5], texts: ['m5'], gap: undefined, lastSeq: 5 },
      ])
      assert.deepEqual((await store.readDeliveryPages([{ clientId: 'c', after: 0 }], 2, T0)).map(summary), [summary(await store.readDeliveries('c', 0, 2, T0))])
      // Retention due at read time (by age) for one queue of the batch: applied, as a single read applies it.
      await store.appendMessage('g', message('b', 'fresh', { receivedAt: T0 + 2 * HOUR }), MEMBER)
      const later = await store.readDeliveryPages([{ clientId: 'a', after: 0 }, { clientId: 'b', after: 2 }, { clientId: 'c', after: 5 }], 10, T0 + 2 * HOUR)
      assert.deepEqual(later.map(summary), [
        { seqs: [1], texts: ['fresh'], gap: undefined, lastSeq: 1 },
        { seqs: [], texts: [], gap: { missedFrom: 3, firstAvailableSeq: 6 }, lastSeq: 5 },
        { seqs: [6], texts: ['fresh'], gap: undefined, lastSeq: 6 },
      ])
      assert.deepEqual(summary(await store.readDeliveries('b', 2, 10, T0 + 2 * HOUR)), { seqs: [], texts: [], gap: { missedFrom: 3, firstAvailableSeq: 6 }, lastSeq: 5 })
    })

    test('a byte budget cuts every read to the leading entries that fit, always the first; the rest is read on with after', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['a', 'b'])
      // 10, 20, 30, 40 and 50 bytes.
      for (let i = 1; i <= 5; i++) await store.appendMessage('g', message('a', String(i).repeat(10 * i)), MEMBER)
      const sizes = (entries: readonly { data: Uint8Array }[]) => entries.map((e) => e.data.length)
      assert.deepEqual(sizes((await logOf(store, 'g', 0, 10, 60))!), [10, 20, 30], 'exactly full')
      assert.deepEqual(sizes((await logOf(store, 'g', 0, 10, 59))!), [10, 20])
      assert.deepEqual(sizes((await logOf(store, 'g', 3, 10, 5))!), [40], 'one larger than the budget still comes alone')
      assert.deepEqual(sizes((await logOf(store, 'g', 0, 2, 1000))!), [10, 20], 'the limit still holds')
      assert.deepEqual(sizes((await logOf(store, 'g', 0, 10))!), [10, 20, 30, 40, 50], 'no budget: the whole page')
      assert.deepEqual(await logOf(store, 'nothing', 0, 10, 5), undefined)

      const page = await store.readDeliveries('b', 1, 10, T0, 75)
      assert.deepEqual(page.deliveries.map((d) => [d.seq, d.data.length]), [[2, 20], [3, 30]])
      assert.equal(page.lastSeq, 5, 'the page says that more were queued')
      const pages = await store.readDeliveryPages([{ clientId: 'b', after: 3 }, { clientId: 'b', after: 0 }, { clientId: 'nobody', after: 0 }], 10, T0, 45)
      assert.deepEqual(pages.map((p) => p.deliveries.map((d) => d.seq)), [[4], [1, 2], []])
      assert.deepEqual(pages.map((p) => p.lastSeq), [5, 5, 0])

      for (const label of ['w1', 'w22', 'w333']) await welcome(store, 'carol', label)
      // 2, 3 and 4 bytes.
      assert.deepEqual((await store.readWelcomes('carol', 0, 10, T0, 4)).map((w) => text(w.data)), ['w1'])
      assert.deepEqual((await store.readWelcomes('carol', 0, 10, T0, 5)).map((w) => text(w.data)), ['w1', 'w22'])
      assert.deepEqual((await store.readWelcomes('carol', 2, 10, T0, 1)).map((w) => text(w.data)), ['w333'])
    })

    test('Welcome inboxes keep the queue retention by count: the newest stay, with their seqs', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 3, maxAgeMs: 24 * HOUR } })
      for (let i = 1; i <= 5; i++) await welcome(store, 'carol', `w${i}`)
      assert.deepEqual(await inbox(store, 'carol', 0, T0), [[3, 'w3', 'w3'], [4, 'w4', 'w4'], [5, 'w5', 'w5']])
      assert.deepEqual(await inbox(store, 'carol', 3, T0), [[4, 'w4', 'w4'], [5, 'w5', 'w5']], 'a reader pages on with after')
      assert.deepEqual((await store.readWelcomes('carol', 0, 1, T0)).map((w) => w.seq), [3])
      await welcome(store, 'carol', 'w6')
      assert.deepEqual(await inbox(store, 'carol', 0, T0), [[4, 'w4', 'w4'], [5, 'w5', 'w5'], [6, 'w6', 'w6']])
      assert.deepEqual(await inbox(store, 'carol', 5, T0), [[6, 'w6', 'w6']])
    })

    test('old Welcomes age out, at append time and at read time; seqs go on', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 100, maxAgeMs: HOUR } })
      await welcome(store, 'carol', 'old')
      await welcome(store, 'carol', 'newer', T0 + 30 * 60_000)
      await welcome(store, 'dave', 'other')
      await welcome(store, 'carol', 'late', T0 + HOUR + 1)
      assert.deepEqual(await inbox(store, 'carol', 0, T0), [[2, 'newer', 'newer'], [3, 'late', 'late']], 'the old one was dropped on append')
      assert.deepEqual(await inbox(store, 'dave', 0, T0), [[1, 'other', 'other']], 'each inbox on its own')
      assert.deepEqual(await inbox(store, 'carol', 0, T0 + 2 * HOUR), [[3, 'late', 'late']])
      assert.deepEqual(await inbox(store, 'dave', 0, T0 + 2 * HOUR), [])
      assert.deepEqual(await inbox(store, 'carol', 0, T0 + 3 * HOUR), [])
      await welcome(store, 'carol', 'again', T0 + 3 * HOUR)
      assert.deepEqual(await inbox(store, 'carol', 0, T0 + 3 * HOUR), [[4, 'again', 'again']], 'seqs go on after an emptied inbox')
    })
  })
}
