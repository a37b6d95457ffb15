import assert from 'node:assert/strict'
import { test } from 'node:test'
import { deliveryFrame } from '../../src/http/delivery-frames.js'
import { deliveryView, toBase64 } from '../../src/schemas/views.js'
import type { Delivery } from '../../src/storage/store.js'

test('a stream frame is exactly the JSON of the delivery view, also when members share the bytes', () => {
  const data = new Uint8Array([1, 2, 3, 250])
  const base: Delivery = { seq: 1, groupId: 'g', groupSeq: 7, senderId: 's', kind: 'message', messageType: 'Welcome', epoch: null, contentType: 'welcome', data, receivedAt: 1_700_000_000_000 }
  const variants: Delivery[] = [
    base,
    { ...base, seq: 42 },
    // The same bytes as the recipient's Welcome delivery: other kind, other fields.
    { ...base, seq: 3, kind: 'welcome' },
    { ...base, seq: 4, groupSeq: 8 },
    { ...base, seq: 5, groupId: 'other' },
    { ...base, seq: 6 },
  ]
  for (const delivery of variants) {
    assert.equal(deliveryFrame(delivery), JSON.stringify(deliveryView(delivery, toBase64)))
  }
})
