import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ByteSlab } from '../../src/storage/byte-slab.js'
import { MessageLog } from '../../src/storage/message-log.js'
import { CONTENT_TYPES, MESSAGE_TYPES, type NewMessage } from '../../src/storage/store.js'

const T0 = 1_700_000_000_000

function message(i: number, overrides: Partial<NewMessage> = {}): NewMessage {
  return {
    senderId: `client-${i % 3}`,
    messageType: MESSAGE_TYPES[i % MESSAGE_TYPES.length]!,
    data: Uint8Array.from({ length: 1 + (i % 50) }, (_, j) => (i * 7 + j) & 0xff),
    receivedAt: T0 + i * 1.5,
    epoch: i % 4 === 0 ? null : i,
    contentType: i % 5 === 0 ? null : CONTENT_TYPES[i % CONTENT_TYPES.length]!,
    ...overrides,
  }
}

test('MessageLog: appends get seqs 1, 2, 3, …; slice gives back every field, across growth of the records', () => {
  const log = new MessageLog(new ByteSlab(64, 1024))
  const inputs = Array.from({ length: 100 }, (_, i) => message(i))
  inputs.forEach((input, i) => assert.equal(log.append(input, 1000 + i), i + 1))
  assert.equal(log.length, 100)
  const stored = log.slice(0)
  assert.deepEqual(stored, inputs.map((input, i) => ({ ...input, seq: i + 1 })))
  inputs.forEach((input, i) => {
    assert.equal(log.receivedAt(i), input.receivedAt)
    assert.equal(log.messageType(i), input.messageType)
    assert.equal(log.epochAfter(i), 1000 + i)
    assert.deepEqual(log.data(i), input.data)
  })
})

test('MessageLog: null epoch and contentType stay null; epoch 0 and every code stay what they were', () => {
  const log = new MessageLog()
  log.append(message(0, { epoch: null, contentType: null, messageType: 'Welcome' }), 0)
  log.append(message(1, { epoch: 0, contentType: 'welcome', messageType: 'Proposal' }), 0)
  log.append(message(2, { epoch: Number.MAX_SAFE_INTEGER, contentType: 'application' }), Number.MAX_SAFE_INTEGER)
  const [first, second, third] = log.slice(0)
  assert.equal(first!.epoch, null)
  assert.equal(first!.contentType, null)
  assert.equal(first!.messageType, 'Welcome')
  assert.equal(second!.epoch, 0)
  assert.equal(second!.contentType, 'welcome')
  assert.equal(second!.messageType, 'Proposal')
  assert.equal(third!.epoch, Number.MAX_SAFE_INTEGER)
  assert.equal(log.epochAfter(2), Number.MAX_SAFE_INTEGER)
})

test('MessageLog: slice takes bounds as Array.prototype.slice does', () => {
  const log = new MessageLog()
  const reference = Array.from({ length: 10 }, (_, i) => ({ ...message(i), seq: i + 1 }))
  reference.forEach((m) => log.append(m, 0))
  for (const [start, end] of [[0, 10], [3, 5], [5, 3], [9, 100], [10, 20], [50, 60], [0, 0], [2, -1], [-3, undefined], [-20, 2], [1.7, 4.2], [NaN, 2], [0, Infinity]] as const) {
    assert.deepEqual(log.slice(start, end), reference.slice(start, end), `slice(${start}, ${end})`)
  }
  assert.deepEqual(new MessageLog().slice(0, 10), [])
})

test('MessageLog: views are fresh, equal to the input bytes, and independent of the input', () => {
  const log = new MessageLog(new ByteSlab(16, 1024))
  const input = Uint8Array.from([0, 1, 2, 255, 0])
  log.append(message(0, { data: input }), 0)
  input.fill(9)
  const a = log.data(0)
  const b = log.slice(0)[0]!.data
  assert.deepEqual(a, Uint8Array.from([0, 1, 2, 255, 0]))
  assert.deepEqual(b, a)
  assert.notEqual(a, b, 'each read makes its own view')
  const empty = log.append(message(1, { data: new Uint8Array(0) }), 0)
  assert.equal(log.data(empty - 1).length, 0)
})

test('MessageLog: a value larger than max/8 gets a chunk of its own; small ones share theirs', () => {
  const log = new MessageLog(new ByteSlab(16, 1024))
  const small = Uint8Array.from([1, 2, 3])
  const large = new Uint8Array(1000).fill(7)
  log.append(message(0, { data: small }), 0)
  log.append(message(1, { data: large }), 0)
  log.append(message(2, { data: small }), 0)
  const [a, b, c] = [0, 1, 2].map((i) => log.data(i))
  assert.deepEqual(b, large)
  assert.equal(b!.byteOffset, 0)
  assert.equal(b!.buffer.byteLength, 1000)
  assert.deepEqual(a, small)
  assert.deepEqual(c, small)
  assert.equal(a!.buffer, c!.buffer, 'small values after a large one still go to the shared chunk')
  assert.equal(c!.byteOffset, 3)
})

test('MessageLog: dropping the oldest keeps one run of seqs, every field of what is kept, and releases only chunks no kept message is in', () => {
  const slab = new ByteSlab(64, 1024)
  const log = new MessageLog(slab)
  // Small messages fill small chunks; every 40th is large (a chunk of its own, placed between them).
  const inputs = Array.from({ length: 3000 }, (_, i) => message(i, i % 40 === 39 ? { data: new Uint8Array(600).fill(i & 0xff) } : {}))
  inputs.forEach((input, i) => log.append(input, 1000 + i))
  const held = slab.chunksHeld
  const early = log.slice(0, 1)[0]!
  assert.equal(log.dropReceivedBefore(T0), 0, 'nothing older than the first')
  assert.equal(log.dropReceivedBefore(inputs[2500]!.receivedAt), 2500)
  assert.equal(log.firstSeq, 2501)
  assert.equal(log.length, 3000)
  assert.ok(slab.chunksHeld < held / 2, `${slab.chunksHeld} of ${held} chunks held`)
  assert.deepEqual(log.slice(0), inputs.slice(2500).map((input, i) => ({ ...input, seq: 2501 + i })), 'what is kept reads back exactly, from the first kept on')
  assert.deepEqual(early.data, inputs[0]!.data, 'a view made before the drop keeps its bytes')
  assert.deepEqual(log.slice(2999).map((m) => m.seq), [3000])
  assert.equal(log.epochAfter(2999), 3999)
  // Appends go on, into a chunk of their own if the one in use was released.
  log.append(message(3000), 4000)
  assert.deepEqual(log.slice(2998).map((m) => [m.seq, m.data]), [[2999, inputs[2998]!.data], [3000, inputs[2999]!.data], [3001, message(3000).data]])
  assert.equal(log.dropReceivedBefore(Infinity), 501)
  assert.equal(log.firstSeq, 3002)
  assert.deepEqual(log.slice(0), [])
  assert.equal(slab.chunksHeld, 1, 'only the chunk values still go into')
  log.append(message(3001), 4001)
  assert.deepEqual(log.slice(0).map((m) => [m.seq, m.data]), [[3002, message(3001).data]])
})

test('MessageLog: a quiet log whose every message is dropped keeps filling the chunk in use, not a new one per message', () => {
  const slab = new ByteSlab(4096, 1024 * 1024)
  const log = new MessageLog(slab)
  const views: Uint8Array[] = []
  for (let i = 0; i < 50; i++) {
    log.append(message(i, { data: new Uint8Array(200).fill(i), receivedAt: T0 + i }), i)
    views.push(log.slice(i)[0]!.data)
    assert.equal(log.dropReceivedBefore(T0 + i + 1), 1)
  }
  // 50 × 200 B: three chunks of 4 KiB at most, however long the log lives this way.
  assert.ok(slab.chunksHeld <= 1, `${slab.chunksHeld} chunks held`)
  assert.ok(new Set(views.map((v) => v.buffer)).size <= 3, `${new Set(views.map((v) => v.buffer)).size} buffers for 50 small messages`)
  views.forEach((view, i) => assert.ok(view.every((b) => b === i), `message ${i} read back through its view`))
})

test('MessageLog: a drop stops at `max`, and the next goes on from there', () => {
  const log = new MessageLog(new ByteSlab(64, 1024))
  for (let i = 0; i < 100; i++) log.append(message(i), i)
  assert.equal(log.dropReceivedBefore(Infinity, 30), 30)
  assert.equal(log.firstSeq, 31)
  assert.equal(log.dropReceivedBefore(Infinity, 100), 70)
  assert.equal(log.firstSeq, 101)
})
