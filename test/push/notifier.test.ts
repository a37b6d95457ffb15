import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test, type TestContext } from 'node:test'
import { PUSH_BATCH_BYTES, PUSH_BATCH_SIZE, PUSH_CONCURRENCY, PUSH_MAX_WAITING, PushNotifier, type PushChannel, type PushOutcome } from '../../src/push/notifier.js'
import { until } from '../helpers/until.js'

interface Call {
  readonly clients: readonly string[]
  readonly at: number
  readonly signal: AbortSignal
}

/** A channel that records its calls and answers as told (delivered by default). */
class RecordingChannel implements PushChannel {
  readonly calls: Call[] = []
  answer: (call: Call) => PushOutcome | Promise<PushOutcome> = () => ({ ok: true })

  async send(clients: readonly string[], signal: AbortSignal): Promise<PushOutcome> {
    const call = { clients: [...clients], at: Date.now(), signal }
    this.calls.push(call)
    return this.answer(call)
  }
}

class Counts {
  readonly clients = { notified: 0, listening: 0, dropped: 0 }
  readonly batches = { delivered: 0, retried: 0, failed: 0 }
  pushClient(result: 'notified' | 'listening' | 'dropped'): void {
    this.clients[result]++
  }

  pushBatch(outcome: 'delivered' | 'retried' | 'failed'): void {
    this.batches[outcome]++
  }
}

const quiet = { warn() {}, error() {} }

function notifier(channel: PushChannel, options: { minIntervalMs?: number; listening?: (c: string) => boolean; counts?: Counts } = {}): PushNotifier {
  return new PushNotifier({ channel, minIntervalMs: options.minIntervalMs ?? 0, listening: options.listening ?? (() => false), log: quiet, counts: options.counts })
}

/** A channel whose calls wait until `release()`. */
function heldChannel(): { channel: RecordingChannel; release: () => void } {
  const channel = new RecordingChannel()
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  channel.answer = async () => {
    await released
    return { ok: true }
  }
  return { channel, release }
}

/** A notifier with windows of `interval`, returned just after a window begins, so the window has room for what a test does. */
async function atWindowStart(t: TestContext, interval: number): Promise<{ channel: RecordingChannel; push: PushNotifier }> {
  const channel = new RecordingChannel()
  const push = notifier(channel, { minIntervalMs: interval })
  t.after(() => push.close())
  await sleep(interval - (Date.now() % interval) + 5)
  return { channel, push }
}

test('clients of one turn go in one call; a client is told once a window, the first delivery at once and the rest at its end', async (t) => {
  const interval = 1000
  const { channel, push } = await atWindowStart(t, interval)
  const windowEnd = (Math.floor(Date.now() / interval) + 1) * interval
  push.notify(['alice', 'bob'])
  push.notify(['bob', 'carol'])
  await until(() => channel.calls.length === 1, 'the first call')
  assert.deepEqual(channel.calls[0]!.clients, ['alice', 'bob', 'carol'])
  assert.ok(channel.calls[0]!.at < windowEnd, 'told at once')

  push.notify(['bob'])
  push.notify(['bob'])
  await sleep(50)
  push.notify(['bob', 'dave'])
  await until(() => channel.calls.length === 2, 'dave, new in this window')
  assert.deepEqual(channel.calls[1]!.clients, ['dave'])
  await until(() => channel.calls.length === 3, 'bob, at the end of the window')
  assert.deepEqual(channel.calls[2]!.clients, ['bob'])
  assert.ok(channel.calls[2]!.at >= windowEnd, `bob told at ${channel.calls[2]!.at}, not before the window ended at ${windowEnd}`)
  await sleep(interval * 2)
  assert.equal(channel.calls.length, 3, 'nothing more: nothing new came')
})

test('a client told at the end of a window counts as told in the next one', async (t) => {
  const { channel, push } = await atWindowStart(t, 1000)
  push.notify(['bob'])
  push.notify(['bob'])
  await until(() => channel.calls.length === 2, 'the first and the end-of-window call')
  // Within the window that began with the end-of-window call, bob waits for its end again.
  push.notify(['bob'])
  await sleep(30)
  assert.equal(channel.calls.length, 2)
  await until(() => channel.calls.length === 3, 'the next window end')
})

test('clients that listen on this instance are not told; one that stopped listening with a delivery missed is', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  const push = notifier(channel, { listening: (c) => c === 'streaming', counts })
  t.after(() => push.close())
  push.notify(['streaming', 'offline'])
  await until(() => channel.calls.length === 1, 'a call')
  assert.deepEqual(channel.calls[0]!.clients, ['offline'])
  assert.deepEqual(counts.clients, { notified: 1, listening: 1, dropped: 0 })
  push.notify(['streaming'])
  await sleep(30)
  assert.equal(channel.calls.length, 1, 'no call for a listening client alone')
  push.missed('gone')
  await until(() => channel.calls.length === 2, 'the client that missed a delivery')
  assert.deepEqual(channel.calls[1]!.clients, ['gone'])
})

test('with no interval every turn with deliveries is told', async (t) => {
  const channel = new RecordingChannel()
  const push = notifier(channel)
  t.after(() => push.close())
  for (let i = 0; i < 3; i++) {
    push.notify(['bob'])
    await until(() => channel.calls.length === i + 1, `call ${i + 1}`)
  }
  assert.deepEqual(channel.calls.map((c) => c.clients), [['bob'], ['bob'], ['bob']])
})

test('clients waiting while every call is busy merge: one call each, however many deliveries they got', async (t) => {
  const { channel, release } = heldChannel()
  const push = notifier(channel)
  t.after(() => push.close())
  for (let i = 0; i < PUSH_CONCURRENCY; i++) {
    push.notify([`busy${i}`])
    await until(() => channel.calls.length === i + 1, `call ${i + 1}`)
  }
  // 2,000 deliveries in 2,000 turns to 50 clients while the gateway is slow.
  for (let i = 0; i < 2000; i++) {
    push.notify([`c${i % 50}`])
    if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await sleep(30)
  assert.equal(channel.calls.length, PUSH_CONCURRENCY, 'no call beyond the busy ones')
  release()
  await until(() => channel.calls.flatMap((c) => c.clients).length === PUSH_CONCURRENCY + 50, 'the waiting clients')
  const waited = channel.calls.slice(PUSH_CONCURRENCY)
  assert.equal(waited.length, 1, 'one call for all of them')
  assert.deepEqual([...waited[0]!.clients].sort(), Array.from({ length: 50 }, (_, i) => `c${i}`).sort())
})

test('a call holds at most 1,000 clients and 64 KiB of ids; a 413 makes the calls smaller and loses no one', async (t) => {
  const channel = new RecordingChannel()
  const push = notifier(channel)
  t.after(() => push.close())
  const many = Array.from({ length: PUSH_BATCH_SIZE + 1 }, (_, i) => `c${i}`)
  push.notify(many)
  await until(() => channel.calls.length === 2, 'two calls')
  assert.deepEqual(channel.calls.map((c) => c.clients.length), [PUSH_BATCH_SIZE, 1])

  // Ids of 256 control characters are ~1.5 KB each in JSON.
  const long = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, '0')}${'\u0001'.repeat(253)}`)
  const from = channel.calls.length
  let refused = 0
  channel.answer = (call) => {
    const bytes = Buffer.byteLength(JSON.stringify({ type: 'deliveries', clients: call.clients }))
    assert.ok(bytes <= PUSH_BATCH_BYTES, `${bytes} bytes in one call`)
    if (bytes > 20_000) {
      refused++
      return { ok: false, retry: false, tooLarge: true, problem: '413' }
    }
    return { ok: true }
  }
  push.notify([...long, 'alice'])
  await until(() => new Set(channel.calls.slice(from).flatMap((c) => c.clients)).size === 101 && channel.calls.at(-1)!.clients.length > 0, 'everyone told')
  await sleep(50)
  assert.ok(refused > 0, 'the gateway refused the large calls')
  const delivered = channel.calls.slice(from).filter((c) => Buffer.byteLength(JSON.stringify({ type: 'deliveries', clients: c.clients })) <= 20_000)
  assert.deepEqual(delivered.flatMap((c) => c.clients).sort(), [...long, 'alice'].sort(), 'every client in a call that was taken, once')
})

test('a failing gateway is left alone until it should be tried again, and the clients wait for the next call', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  // Retry-After longer than the backoff is followed; shorter (0) is not: the backoff (1 s, then 2 s) is the least.
  channel.answer = (call) => [{ ok: false, retry: true, retryAfterMs: 2500, problem: '429' } as const, { ok: false, retry: true, retryAfterMs: 0, problem: '503' } as const][channel.calls.indexOf(call)] ?? { ok: true }
  const push = notifier(channel, { counts })
  t.after(() => push.close())
  push.notify(['bob'])
  await until(() => channel.calls.length === 1, 'the first call')
  for (let i = 0; i < 100; i++) push.notify([`c${i}`])
  await until(() => channel.calls.length === 3, 'two more calls')
  assert.ok(channel.calls[1]!.at - channel.calls[0]!.at >= 2400, 'waited for Retry-After')
  assert.ok(channel.calls[2]!.at - channel.calls[1]!.at >= 1900, 'a Retry-After of 0 does not undo the backoff of a second failure in a row')
  assert.equal(channel.calls[2]!.clients.length, 101, 'bob and the others in one call')
  await sleep(50)
  assert.equal(channel.calls.length, 3)
  assert.deepEqual(counts.batches, { delivered: 1, retried: 2, failed: 0 })
})

test('a gateway that answers 413 to everything ends with calls of one client, each then dropped', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  channel.answer = () => ({ ok: false, retry: false, tooLarge: true, problem: '413' })
  const push = notifier(channel, { counts })
  t.after(() => push.close())
  push.notify(Array.from({ length: 10 }, (_, i) => `c${i}`))
  await until(() => counts.batches.failed === 10, 'every client given up')
  await sleep(50)
  assert.ok(channel.calls.length < 60, `${channel.calls.length} calls`)
  assert.deepEqual(channel.calls.slice(-10).map((c) => c.clients.length), Array(10).fill(1))
})

test('a client that missed a delivery is told at once, even if told earlier in the window', async (t) => {
  const channel = new RecordingChannel()
  const push = notifier(channel, { minIntervalMs: 86_400_000 })
  t.after(() => push.close())
  push.notify(['bob'])
  await until(() => channel.calls.length === 1, 'the first call')
  push.missed('bob')
  await until(() => channel.calls.length === 2, 'the missed delivery, not at midnight')
})

test('a failure no retry can fix drops its clients and stops nothing else', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  channel.answer = (call) => (call.clients[0] === 'refused' ? { ok: false, retry: false, problem: '400' } : { ok: true })
  const push = notifier(channel, { counts })
  t.after(() => push.close())
  push.notify(['refused'])
  await until(() => counts.batches.failed === 1, 'the refused call given up')
  push.notify(['next'])
  await until(() => counts.batches.delivered === 1, 'the next call')
  assert.deepEqual(channel.calls.map((c) => c.clients), [['refused'], ['next']])
})

test('at most PUSH_MAX_WAITING clients wait; beyond, they are dropped and counted', async (t) => {
  const { channel, release } = heldChannel()
  const counts = new Counts()
  const push = notifier(channel, { counts })
  t.after(() => {
    release()
    push.close()
  })
  for (let i = 0; i < PUSH_CONCURRENCY; i++) {
    push.notify([`busy${i}`])
    await until(() => channel.calls.length === i + 1, `call ${i + 1}`)
  }
  push.notify(Array.from({ length: PUSH_MAX_WAITING + 10 }, (_, i) => `c${i}`))
  assert.equal(counts.clients.dropped, 10)
})

test('close abandons calls in flight and sends nothing that was waiting', async (t) => {
  const interval = 1000
  const channel = new RecordingChannel()
  channel.answer = (call) => new Promise((resolve) => call.signal.addEventListener('abort', () => resolve({ ok: false, retry: true, problem: 'aborted' })))
  const push = notifier(channel, { minIntervalMs: interval })
  t.after(() => push.close())
  push.notify(['bob'])
  push.notify(['bob'])
  await until(() => channel.calls.length === 1, 'the call in flight')
  push.close()
  assert.ok(channel.calls[0]!.signal.aborted, 'the call in flight was abandoned')
  push.notify(['carol'])
  push.missed('dave')
  await sleep(interval * 2)
  assert.equal(channel.calls.length, 1, 'no retry, no end-of-window call, nothing after close')
})
