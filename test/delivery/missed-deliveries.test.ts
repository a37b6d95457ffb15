import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LocalDeliveryBus } from '../../src/service/delivery-bus.js'
import { DeliveryWaiter } from '../../src/service/delivery-waiter.js'

/** The bus, with the clients it was told missed a delivery. */
function recordingBus(): { bus: LocalDeliveryBus; missed: string[] } {
  const bus = new LocalDeliveryBus()
  const missed: string[] = []
  bus.whenMissed((clientId) => missed.push(clientId))
  return { bus, missed }
}

/** A long poll of bob's that a delivery has woken (its reader would now read its page). */
async function wokenPoll(bus: LocalDeliveryBus): Promise<DeliveryWaiter> {
  const waiter = new DeliveryWaiter(bus, 'bob', 10_000)
  const woke = waiter.next()
  bus.publish(['bob'])
  assert.equal(await woke, true)
  return waiter
}

test('a long poll that read what woke it misses nothing', async () => {
  const { bus, missed } = recordingBus()
  const waiter = await wokenPoll(bus)
  // The reader reads its page (with the delivery) and answers.
  waiter.close()
  assert.deepEqual(missed, [])
})

test('a long poll answered while a later delivery came misses it, unless another listener of the client stays', async () => {
  const { bus, missed } = recordingBus()
  const waiter = await wokenPoll(bus)
  // While the reader reads its page, another delivery is queued: not in the answer.
  bus.publish(['bob'])
  waiter.close()
  assert.deepEqual(missed, ['bob'])

  const stream = bus.subscribe('carol', () => {})
  const poll = new DeliveryWaiter(bus, 'carol', 10_000)
  bus.publish(['carol'])
  poll.close()
  assert.deepEqual(missed, ['bob'], 'carol still listens on her stream')
  stream()
  assert.equal(bus.listening('carol'), false)
})

test('a long poll that timed out with nothing queued misses nothing', async () => {
  const { bus, missed } = recordingBus()
  const waiter = new DeliveryWaiter(bus, 'bob', 20)
  assert.equal(await waiter.next(), false)
  waiter.close()
  assert.deepEqual(missed, [])
})
