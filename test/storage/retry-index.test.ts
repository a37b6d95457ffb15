import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { MessageLog } from '../../src/storage/message-log.js'
import { digestFor, digestOf, RetryIndex } from '../../src/storage/retry-index.js'
import { retryKeys } from '../../src/storage/retry-keys.js'
import type { NewMessage, RetryIdentity } from '../../src/storage/store.js'

const T0 = 1_700_000_000_000
const WINDOW = 60_000

function message(senderId: string, data: Uint8Array, receivedAt = T0): NewMessage {
  return { senderId, messageType: 'Application', data, receivedAt, epoch: 0, contentType: 'application' }
}

/** Two different byte strings with the same 30-bit digest (a birthday search: ~40,000 hashes). */
function collidingPair(): [Uint8Array, Uint8Array] {
  const seen = new Map<number, Uint8Array>()
  for (let i = 0; ; i++) {
    const data = new TextEncoder().encode(`message ${i}`)
    const other = seen.get(digestOf(data))
    if (other) return [other, data]
    seen.set(digestOf(data), data)
  }
}

/** A group's log and index, appended to as the memory store does. */
class Group {
  readonly log = new MessageLog()
  readonly index = new RetryIndex()

  /** The seq the message got, or the seq it is a retry of (negative). */
  append(m: NewMessage, retry: RetryIdentity): number {
    const digest = digestFor(m.data, retry)
    const found = this.index.find(this.log, m.senderId, m.data, digest, retry, m.receivedAt - WINDOW)
    if (found !== undefined) return -found
    const seq = this.log.append(m, 0)
    this.index.add(seq, digest, retry)
    return seq
  }
}

test('retry index: a digest is a non-negative V8 small integer below 2^30, from the SHA-256 of the bytes', () => {
  for (let i = 0; i < 1000; i++) {
    const digest = digestOf(Uint8Array.of(i & 0xff, i >> 8))
    assert.ok(Number.isInteger(digest) && digest >= 0 && digest < 2 ** 30, String(digest))
  }
  // SHA-256("abc") starts ba 78 16 bf: its first 30 bits.
  assert.equal(digestOf(new TextEncoder().encode('abc')), 0xba7816bf >>> 2)
  assert.equal(digestFor(Uint8Array.of(1), { sameBytes: false, key: 'k' }), -1)
  assert.equal(digestFor(Uint8Array.of(1), undefined), -1)
})

test('retry index: messages that share a digest are told apart by their bytes, and each retry finds its own', () => {
  const [a, b] = collidingPair()
  assert.notDeepEqual(a, b)
  const group = new Group()
  const bytes = { sameBytes: true }
  assert.equal(group.append(message('alice', a), bytes), 1)
  assert.equal(group.append(message('alice', b), bytes), 2, 'a shared digest alone is not a retry')
  assert.equal(group.append(message('bob', a), bytes), 3, 'nor are the same bytes from someone else')
  assert.equal(group.append(message('alice', b), bytes), -2)
  assert.equal(group.append(message('alice', a), bytes), -1)
  assert.equal(group.append(message('bob', a), bytes), -3)
  assert.equal(group.index.size, 3)
  assert.throws(() => group.index.add(5, -1, undefined), /out of order/, 'every accepted message is added, in seq order')
})

test('retry index: messages leave it as they leave the window, in seq order, with their keys', () => {
  const [a, b] = collidingPair()
  const group = new Group()
  assert.equal(group.append(message('alice', a, T0), { sameBytes: true, key: 'k' }), 1)
  assert.equal(group.append(message('alice', b, T0 + 10), { sameBytes: true }), 2)
  assert.equal(group.append(message('alice', Uint8Array.of(3), T0 + 20), { sameBytes: false, key: 'k' }), -1, 'the same key is a retry, whatever the bytes')
  // Past the first message's window: it is gone, with its digest and its key.
  assert.equal(group.append(message('alice', a, T0 + WINDOW + 1), { sameBytes: true }), 3)
  assert.equal(group.index.size, 2)
  assert.equal(group.append(message('alice', b, T0 + WINDOW + 2), { sameBytes: true }), -2, 'the message sharing its digest stays')
  assert.equal(group.append(message('alice', Uint8Array.of(5), T0 + WINDOW + 5), { sameBytes: false, key: 'k' }), 4, 'the key is free again')
  assert.equal(group.append(message('alice', Uint8Array.of(6), T0 + WINDOW + 6), { sameBytes: false, key: 'k' }), -4)
  assert.equal(group.append(message('alice', Uint8Array.of(7), T0 + 2 * WINDOW + 100), { sameBytes: false, key: 'k' }), 5)
  assert.equal(group.index.size, 1, 'everything before it has left')
})

test('memory store: a retry of a message whose bytes share a digest with another is answered with its own seq', async () => {
  const [a, b] = collidingPair()
  const store = new MemoryStore()
  await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: T0 })
  const condition = { senderMustBeMember: true, retry: { sameBytes: true } }
  const results = []
  for (const data of [a, b, b, a]) results.push(await store.appendMessage('g', message('alice', data), condition))
  assert.deepEqual(results.map((r) => r.ok && [r.seq, r.duplicate]), [[1, false], [2, false], [2, true], [1, true]])
  await store.close()
})

test('retry keys (PostgreSQL, SQLite): the text keys of earlier versions, and one key per sender when the sender has a colon', () => {
  const data = new TextEncoder().encode('abc')
  assert.deepEqual(retryKeys(message('alice', data), { sameBytes: true, key: 'k:1' }), [
    'bytes:alice:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=',
    'key:alice:k:1',
  ])
  assert.deepEqual(retryKeys(message('a:b', data), { sameBytes: false, key: 'c' }), ['key#3:a:b:c'])
  assert.notDeepEqual(retryKeys(message('a', data), { sameBytes: false, key: 'b:c' }), retryKeys(message('a:b', data), { sameBytes: false, key: 'c' }))
  assert.deepEqual(retryKeys(message('alice', data), { sameBytes: false }), [])
  assert.deepEqual(retryKeys(message('alice', data), undefined), [])
})

test('RetryIndex: messages that left the log are forgotten without reading them; the index goes on after them', () => {
  const group = new Group()
  const bytes = (i: number) => new TextEncoder().encode(`m${i}`)
  for (let i = 1; i <= 3000; i++) assert.equal(group.append(message('alice', bytes(i), T0 + i), { sameBytes: true, key: `k${i}` }), i)
  // The log drops its first 2,500 (they are older than the window by then); the index is told.
  assert.equal(group.log.dropReceivedBefore(T0 + 2501), 2500)
  group.index.forgetBefore(group.log.firstSeq)
  assert.equal(group.index.size, 500)
  const late = T0 + 2600
  assert.equal(group.append(message('alice', bytes(2501), late), { sameBytes: true }), -2501, 'a kept message is still found by its bytes')
  assert.equal(group.append(message('alice', bytes(3000), late), { sameBytes: false, key: 'k3000' }), -3000, 'and by its key')
  assert.equal(group.append(message('alice', bytes(7), late), { sameBytes: true, key: 'k7' }), 3001, 'a forgotten one is not: a message of its own')
  group.index.forgetBefore(10)
  assert.equal(group.index.size, 501, 'forgetting what is already forgotten changes nothing')
  assert.equal(group.append(message('alice', bytes(7), late), { sameBytes: true }), -3001)
})
