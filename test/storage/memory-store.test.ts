import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { storeContract } from './store-contract.js'

storeContract(async (options) => new MemoryStore(options))

test('memory store: the deliveries of one message share one view of its bytes (delivery frames are cached per view)', async () => {
  const store = new MemoryStore()
  await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: 0 })
  await store.addMember('g', 'bob')
  await store.addMember('g', 'carol')
  const data = Uint8Array.from([1, 2, 3])
  const sent = { senderId: 'alice', messageType: 'Application', data, receivedAt: 1, epoch: null, contentType: null } as const
  await store.appendMessage('g', sent, { senderMustBeMember: true })
  const [bob] = (await store.readDeliveries('bob', 0, 10, 1)).deliveries
  const [carol] = (await store.readDeliveries('carol', 0, 10, 1)).deliveries
  assert.deepEqual(bob!.data, data)
  assert.equal(bob!.data, carol!.data)
  await store.close()
})
