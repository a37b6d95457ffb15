import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { LocalDeliveryBus } from '../../src/service/delivery-bus.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { STREAM_SLICE_BYTES, type DeliverySink } from '../../src/service/subscription.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import type { Delivery } from '../../src/storage/store.js'

/** A real store whose queue reads are counted: each is a database round trip on PostgreSQL. */
class CountingStore extends MemoryStore {
  reads = 0
  /** The reads of each readDeliveryPages call, by client. */
  batches: string[][] = []
  override readDeliveries(...args: Parameters<MemoryStore['readDeliveries']>) {
    this.reads++
    return super.readDeliveries(...args)
  }

  override readDeliveryPages(...args: Parameters<MemoryStore['readDeliveryPages']>) {
    this.batches.push(args[0].map((r) => r.clientId))
    return super.readDeliveryPages(...args)
  }
}

function collectingSink(): DeliverySink & { got: Delivery[] } {
  const got: Delivery[] = []
  return { got, deliver: (page) => void got.push(...page), gap: () => undefined, full: false, drained: async () => true, fail: (err) => assert.fail(String(err)) }
}

const turn = () => new Promise((resolve) => setImmediate(resolve))
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await turn()
  assert.ok(condition(), 'timed out')
}

/** A service over a counting memory store, with group g of `members`; relay(i) sends `m<i>` from the first. */
async function groupOf(members: readonly string[], options: { pageMaxBytes?: number } = {}) {
  const store = new CountingStore()
  const service = new DeliveryService({ store, bus: new LocalDeliveryBus(), log: pino({ level: 'silent' }), ...options })
  await service.createGroup('g', members[0]!)
  for (const member of members.slice(1)) await service.joinGroup('g', member)
  const relay = (i: number | string) => service.relayMessage({ groupId: 'g', senderId: members[0]!, message: new TextEncoder().encode(typeof i === 'number' ? `m${i}` : i), messageType: 'Application' }, { validation: 'permissive' })
  return { store, service, relay }
}

test('pages cut by the byte budget are read on: a stream delivers the whole backlog, then stops reading at its last seq', async () => {
  // m1 … m9 are 2 bytes, m10 … m40 3: a page of at most 10 bytes holds 3 or 4 of them.
  const { store, service, relay } = await groupOf(['alice', 'bob'], { pageMaxBytes: 10 })
  for (let i = 1; i <= 40; i++) await relay(i)
  const sink = collectingSink()
  service.subscribe('bob', 0, sink).start()
  await until(() => sink.got.length === 40)
  await turn()
  assert.deepEqual(sink.got.map((d) => d.seq), Array.from({ length: 40 }, (_, i) => i + 1))
  assert.equal(store.reads, 2 + Math.ceil(31 / 3), 'one read per page of 10 bytes, none after the page that reached seq 40')
  assert.deepEqual((await service.readDeliveries('bob', 0, 100)).deliveries.map((d) => d.seq), [1, 2, 3, 4, 5], 'a pull reads the same pages')
})

test('a live stream reads its queue once per wake, not again to find it empty; long backlogs in pages of 100', async () => {
  const { store, service, relay } = await groupOf(['alice', 'bob'])

  for (let i = 1; i <= 250; i++) await relay(i)
  const sink = collectingSink()
  const subscription = service.subscribe('bob', 0, sink)
  subscription.start()
  await until(() => sink.got.length === 250)
  await turn()
  assert.equal(store.reads, 3, 'pages of 100, 100 and 50, and no read after the short one')

  for (let i = 251; i <= 260; i++) {
    await relay(i)
    await until(() => sink.got.length === i)
  }
  await turn()
  assert.equal(store.reads, 13, 'one read for each message that woke the stream')
  assert.deepEqual(sink.got.map((d) => d.seq), Array.from({ length: 260 }, (_, i) => i + 1))
  subscription.close()
})

test('a message accepted while the stream is reading is not missed', async () => {
  const { store, service, relay } = await groupOf(['alice', 'bob'])
  const sink = collectingSink()
  const subscription = service.subscribe('bob', 0, sink)
  subscription.start()
  // Relay while the stream's reads are in flight, many times over.
  const sends: Promise<unknown>[] = []
  for (let i = 1; i <= 200; i++) {
    sends.push(relay(i))
    if (i % 7 === 0) await turn()
  }
  await Promise.all(sends)
  await until(() => sink.got.length === 200)
  assert.deepEqual(sink.got.map((d) => d.seq), Array.from({ length: 200 }, (_, i) => i + 1))
  subscription.close()
})

test('the streams one message wakes read their queues together, in one call of the store', async () => {
  const members = Array.from({ length: 10 }, (_, i) => `m${i}`)
  const { store, service, relay } = await groupOf(['alice', ...members])
  const sinks = members.map(() => collectingSink())
  const subscriptions = members.map((member, i) => service.subscribe(member, 0, sinks[i]!))
  subscriptions.forEach((s) => s.start())
  await until(() => store.batches.length > 0)
  await turn()
  assert.deepEqual(store.batches, [members], 'the first reads of all ten streams went together')

  store.batches = []
  await relay('hello')
  await until(() => sinks.every((sink) => sink.got.length === 1))
  assert.deepEqual(store.batches, [members], 'one call for the ten streams the message woke')
  for (const sink of sinks) assert.equal(new TextDecoder().decode(sink.got[0]!.data), 'hello')
  subscriptions.forEach((s) => s.close())
})

test('the live-stream gauge counts a stream from its first start to its first close, once', async () => {
  const service = new DeliveryService({ store: new MemoryStore(), log: pino({ level: 'silent' }) })
  const open = async () => Number(/^mlsds_streams_open (\d+)$/m.exec((await service.metrics.render()).text)?.[1])
  const a = service.subscribe('a', 0, collectingSink())
  const b = service.subscribe('b', 0, collectingSink())
  assert.equal(await open(), 0, 'not counted before start')
  a.start()
  b.start()
  a.start()
  assert.equal(await open(), 2, 'a second start changes nothing')
  a.close()
  a.close()
  assert.equal(await open(), 1, 'a second close changes nothing')
  const never = service.subscribe('c', 0, collectingSink())
  never.close()
  never.start()
  assert.equal(await open(), 1, 'closed before it started: never counted, and start does nothing')
  b.close()
  assert.equal(await open(), 0)
})

test('a page of large messages reaches a consumer that reads nothing in slices: its backlog stays within its limit plus one slice', async () => {
  const { service, relay } = await groupOf(['alice', 'bob'])
  const size = 100 * 1024
  for (let i = 0; i < 30; i++) await relay(`${i}:${'x'.repeat(size)}`)
  const limit = 300 * 1024
  let backlog = 0
  let largest = 0
  let drain: (() => void) | undefined
  const got: Delivery[] = []
  const sink: DeliverySink = {
    deliver: (page) => {
      got.push(...page)
      backlog += page.reduce((n, d) => n + d.data.length, 0)
      largest = Math.max(largest, backlog)
    },
    gap: () => undefined,
    get full() {
      return backlog > limit
    },
    drained: () => new Promise<boolean>((resolve) => (drain = () => resolve(true))),
    fail: (err) => assert.fail(String(err)),
  }
  const subscription = service.subscribe('bob', 0, sink)
  subscription.start()
  while (got.length < 30) {
    await until(() => drain !== undefined || got.length === 30)
    assert.ok(largest <= limit + STREAM_SLICE_BYTES + size, `backlog reached ${largest} bytes`)
    // The consumer reads everything, once the stream waits for it.
    backlog = 0
    const resume = drain
    drain = undefined
    resume?.()
  }
  assert.deepEqual(got.map((d) => d.seq), Array.from({ length: 30 }, (_, i) => i + 1))
  assert.ok(largest < 30 * size / 2, `the whole page went at once (${largest} bytes)`)
  subscription.close()
})
