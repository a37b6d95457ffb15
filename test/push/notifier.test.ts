import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { PUSH_ATTEMPTS, PUSH_BATCH_SIZE, PUSH_CONCURRENCY, PushNotifier, type PushAttempt, type PushChannel, type PushOutcome } from '../../src/push/notifier.js'
import { until } from '../helpers/until.js'

interface Call {
  readonly clients: readonly string[]
  readonly attempt: PushAttempt
  readonly at: number
  readonly signal: AbortSignal
}

/** A channel that records its calls and answers as told (delivered by default). */
class RecordingChannel implements PushChannel {
  readonly calls: Call[] = []
  answer: (call: Call) => PushOutcome | Promise<PushOutcome> = () => ({ ok: true })

  async send(clients: readonly string[], attempt: PushAttempt, signal: AbortSignal): Promise<PushOutcome> {
    const call = { clients: [...clients], attempt, at: Date.now(), signal }
    this.calls.push(call)
    return this.answer(call)
  }
}

class Counts {
  readonly clients = { notified: 0, listening: 0 }
  readonly batches = { delivered: 0, retried: 0, failed: 0 }
  pushClient(result: 'notified' | 'listening'): void {
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

test('clients of one turn go in one call; a client is told once a window, the first delivery at once and the rest at its end', async (t) => {
  const interval = 400
  const channel = new RecordingChannel()
  const push = notifier(channel, { minIntervalMs: interval })
  t.after(() => push.close())
  // Start just after a window begins, so the window has room for what follows.
  await sleep(interval - (Date.now() % interval) + 5)
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
  assert.notEqual(channel.calls[0]!.attempt.id, channel.calls[1]!.attempt.id, 'each batch has its own id')
})

test('a client told at the end of a window counts as told in the next one', async (t) => {
  const interval = 300
  const channel = new RecordingChannel()
  const push = notifier(channel, { minIntervalMs: interval })
  t.after(() => push.close())
  await sleep(interval - (Date.now() % interval) + 5)
  push.notify(['bob'])
  push.notify(['bob'])
  await until(() => channel.calls.length === 2, 'the first and the end-of-window call')
  // Within the window that began with the end-of-window call, bob waits for its end again.
  push.notify(['bob'])
  await sleep(30)
  assert.equal(channel.calls.length, 2)
  await until(() => channel.calls.length === 3, 'the next window end')
})

test('clients that listen on this instance are not told', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  const push = notifier(channel, { listening: (c) => c === 'streaming', counts })
  t.after(() => push.close())
  push.notify(['streaming', 'offline'])
  await until(() => channel.calls.length === 1, 'a call')
  assert.deepEqual(channel.calls[0]!.clients, ['offline'])
  assert.deepEqual(counts.clients, { notified: 1, listening: 1 })
  push.notify(['streaming'])
  await sleep(30)
  assert.equal(channel.calls.length, 1, 'no call for a listening client alone')
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

test('a large turn is split into batches, and at most a few calls run at once', async (t) => {
  const channel = new RecordingChannel()
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let running = 0
  let most = 0
  channel.answer = async () => {
    most = Math.max(most, ++running)
    await released
    running--
    return { ok: true }
  }
  const push = notifier(channel)
  t.after(() => push.close())
  const clients = Array.from({ length: PUSH_BATCH_SIZE * (PUSH_CONCURRENCY + 1) + 1 }, (_, i) => `c${i}`)
  push.notify(clients)
  await until(() => channel.calls.length === PUSH_CONCURRENCY, 'the first calls')
  await sleep(30)
  assert.equal(channel.calls.length, PUSH_CONCURRENCY, 'the rest wait for a free call')
  release()
  await until(() => channel.calls.length === PUSH_CONCURRENCY + 2, 'every batch')
  assert.equal(most, PUSH_CONCURRENCY)
  assert.deepEqual(channel.calls.map((c) => c.clients.length), [...Array(PUSH_CONCURRENCY + 1).fill(PUSH_BATCH_SIZE), 1])
  assert.deepEqual(channel.calls.flatMap((c) => c.clients), clients, 'every client once, in order')
})

test('a failure worth a retry is retried with the same id, after the delay the receiver asked for', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  channel.answer = (call) => (call.attempt.number < 3 ? { ok: false, retry: true, retryAfterMs: 100, problem: 'busy' } : { ok: true })
  const push = notifier(channel, { counts })
  t.after(() => push.close())
  push.notify(['bob'])
  await until(() => channel.calls.length === 3, 'three tries')
  assert.deepEqual(channel.calls.map((c) => c.attempt.number), [1, 2, 3])
  assert.equal(new Set(channel.calls.map((c) => c.attempt.id)).size, 1, 'one id for every try')
  assert.ok(channel.calls[1]!.at - channel.calls[0]!.at >= 95, 'waited for Retry-After')
  assert.deepEqual(counts.batches, { delivered: 1, retried: 2, failed: 0 })
})

test('tries stop after the last attempt, and at once for a failure no retry can fix', async (t) => {
  const channel = new RecordingChannel()
  const counts = new Counts()
  channel.answer = (call) => (call.clients[0] === 'gone' ? { ok: false, retry: false, problem: '400' } : { ok: false, retry: true, retryAfterMs: 10, problem: '503' })
  const push = notifier(channel, { counts })
  t.after(() => push.close())
  push.notify(['gone'])
  await until(() => counts.batches.failed === 1, 'the refused batch given up')
  push.notify(['down'])
  await until(() => counts.batches.failed === 2, 'the other given up')
  await sleep(100)
  assert.equal(channel.calls.filter((c) => c.clients[0] === 'gone').length, 1)
  assert.equal(channel.calls.filter((c) => c.clients[0] === 'down').length, PUSH_ATTEMPTS)
  assert.deepEqual(counts.batches, { delivered: 0, retried: PUSH_ATTEMPTS - 1, failed: 2 })
})

test('close abandons calls in flight and sends nothing that was waiting', async (t) => {
  const interval = 300
  const channel = new RecordingChannel()
  channel.answer = (call) => new Promise((resolve) => call.signal.addEventListener('abort', () => resolve({ ok: false, retry: true, problem: 'aborted' })))
  const push = notifier(channel, { minIntervalMs: interval })
  t.after(() => push.close())
  push.notify(['bob'])
  push.notify(['bob'])
  await until(() => channel.calls.length === 1, 'the call in flight')
  await push.close()
  assert.ok(channel.calls[0]!.signal.aborted, 'the call in flight was abandoned')
  push.notify(['carol'])
  await sleep(interval * 2)
  assert.equal(channel.calls.length, 1, 'no retry, no end-of-window call, nothing after close')
})
