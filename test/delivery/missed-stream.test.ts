import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LocalDeliveryBus } from '../../src/service/delivery-bus.js'
import { Subscription, type DeliverySink } from '../../src/service/subscription.js'
import type { QueueReader } from '../../src/service/queue-reader.js'
import type { DeliveryPage } from '../../src/storage/store.js'

/** A reader whose reads wait until released, and a sink that takes everything. */
function stream(bus: LocalDeliveryBus) {
  const pending: Array<(page: DeliveryPage) => void> = []
  const reader = { read: () => new Promise<DeliveryPage>((resolve) => pending.push(resolve)) } as unknown as QueueReader
  const sink: DeliverySink = { deliver() {}, gap() {}, full: false, drained: async () => true, fail() {} }
  const subscription = new Subscription({ reader, bus, clientId: 'bob', after: 0, sink, log: { warn() {} } })
  return { subscription, pending }
}

test('a stream that ends while reading what woke it missed it; one that ends idle, or cleanly after delivering, did not', async () => {
  const bus = new LocalDeliveryBus()
  const missed: string[] = []
  bus.whenMissed((clientId) => missed.push(clientId))

  const busy = stream(bus)
  busy.subscription.start()
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(busy.pending.length, 1, 'reading')
  busy.subscription.close()
  assert.deepEqual(missed, ['bob'])

  const idle = stream(bus)
  idle.subscription.start()
  await new Promise((resolve) => setImmediate(resolve))
  idle.pending[0]!({ deliveries: [], lastSeq: 0 })
  await new Promise((resolve) => setImmediate(resolve))
  idle.subscription.close()
  assert.deepEqual(missed, ['bob'], 'nothing pending')

  const broken = stream(bus)
  broken.subscription.start()
  await new Promise((resolve) => setImmediate(resolve))
  broken.pending[0]!({ deliveries: [], lastSeq: 0 })
  await new Promise((resolve) => setImmediate(resolve))
  broken.subscription.close({ dropped: true })
  assert.deepEqual(missed, ['bob', 'bob'], 'its connection broke after writes')
})
