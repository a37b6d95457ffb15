import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import WebSocket from 'ws'
import type { RunningService } from '../../src/runtime.js'
import { MAX_UNANSWERED_FRAMES } from '../../src/http/websocket-stream.js'
import { RestApi } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { assertGapFree, StreamClient } from '../helpers/stream-client.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')
const untext = (b64: unknown) => Buffer.from(String(b64), 'base64').toString()

/** Sending on the live stream: the same relay as POST /groups/{g}/messages, answered on the socket. */
describe('send frames on a live stream', () => {
  let running: RunningService
  let api: RestApi
  before(async () => {
    // Opaque payloads (permissive) keep these tests about the frames; the MLS flow over send
    // frames, with strict validation, is in mls-stream.test.ts.
    running = await startTestService({ mlsValidation: 'permissive', maxMessageBytes: 64 * 1024 })
    api = new RestApi(running.httpPort)
  })
  after(() => running.close())

  const group = async (id: string, members: string[]) => {
    assert.equal((await api.call('POST', '/groups', { group_id: id, creator_id: members[0] })).status, 201)
    for (const m of members.slice(1)) assert.equal((await api.call('POST', `/groups/${id}/members`, { client_id: m })).status, 200)
  }

  test('a member sends on its stream: answered with its seq, delivered to the others, stored as sent by the stream\'s client', async () => {
    await group('chat', ['ann', 'ben'])
    const ann = await StreamClient.connect(running.httpPort, 'ann')
    const ben = await StreamClient.connect(running.httpPort, 'ben')
    const answer = await ann.ask({ type: 'send', id: 'm1', group_id: 'chat', message: text64('hello ben'), message_type: 'Application' })
    assert.deepEqual(answer, { type: 'sent', id: 'm1', group_id: 'chat', seq: 1, epoch: 0, message_type: 'Application' })
    await ben.waitFor(() => ben.deliveries.length === 1, "ben's delivery")
    assert.equal(ben.deliveries[0]!.sender_id, 'ann')
    assert.equal(untext(ben.deliveries[0]!.message), 'hello ben')
    const stored = (await api.call('GET', '/groups/chat/messages')).body
    assert.deepEqual(stored.messages.map((m: { sender_id: string; seq: number }) => [m.seq, m.sender_id]), [[1, 'ann']])
    // The sender gets no copy of its own message.
    await new Promise((r) => setTimeout(r, 100))
    assert.equal(ann.deliveries.length, 0)
    await ann.close()
    await ben.close()
  })

  test('300 sends without waiting are answered in the order sent, with gap-free seqs, and delivered in that order', async () => {
    await group('burst', ['s', 'r'])
    const sender = await StreamClient.connect(running.httpPort, 's')
    const receiver = await StreamClient.connect(running.httpPort, 'r')
    const total = 300
    for (let i = 0; i < total; i++) sender.send({ type: 'send', id: i, group_id: 'burst', message: text64(`b-${i}`), message_type: 'Application' })
    await sender.waitFor(() => sender.frames.length >= total, 'every answer')
    assert.deepEqual(sender.frames.map((f) => [f.type, f.id, f.seq]), Array.from({ length: total }, (_, i) => ['sent', i, i + 1]))
    await receiver.waitFor(() => receiver.deliveries.length >= total, 'every delivery')
    assert.equal(assertGapFree(receiver.deliveries.map((d) => d.seq!)), undefined)
    assert.deepEqual(receiver.deliveries.map((d) => untext(d.message)), Array.from({ length: total }, (_, i) => `b-${i}`))
    await sender.close()
    await receiver.close()
  })

  test('a retry with the same idempotency_key answers the first seq and is delivered once', async () => {
    await group('retry', ['p', 'q'])
    const p = await StreamClient.connect(running.httpPort, 'p')
    const frame = { type: 'send', group_id: 'retry', message: text64('once'), message_type: 'Application', idempotency_key: 'k-1' }
    const first = await p.ask({ ...frame, id: 'first' })
    const again = await p.ask({ ...frame, id: 'again' })
    assert.equal(first.seq, 1)
    assert.equal(again.seq, 1)
    assert.equal((await api.call('GET', '/clients/q/messages')).body.deliveries.length, 1)
    await p.close()
  })

  test('refused sends get an error frame with the REST error code and the id, and change nothing', async () => {
    await group('rules', ['owner'])
    const stranger = await StreamClient.connect(running.httpPort, 'stranger')
    const owner = await StreamClient.connect(running.httpPort, 'owner')
    const valid = { type: 'send', group_id: 'rules', message: text64('x'), message_type: 'Application' }
    const cases: Array<[StreamClient, Record<string, unknown>, string, RegExp]> = [
      [stranger, { ...valid, id: 1 }, 'not_member', /stranger/],
      [owner, { ...valid, id: 2, group_id: 'nope' }, 'group_not_found', /nope/],
      [owner, { ...valid, id: 3, group_id: '__proto__' }, 'group_not_found', /__proto__/],
      [owner, { ...valid, id: 4, message: 'not base64!' }, 'invalid_base64', /frame field 'message'/],
      [owner, { ...valid, id: 5, message: undefined }, 'bad_request', /'message'/],
      [owner, { ...valid, id: 6, sender_id: 'someone-else' }, 'bad_request', /unknown field 'sender_id'/],
      [owner, { ...valid, id: 7, group_id: 42 }, 'bad_request', /frame field 'group_id' must be of type string/],
      [owner, { ...valid, id: 8, group_id: 'x'.repeat(300) }, 'bad_request', /group_id/],
      [owner, { ...valid, id: 9, message_type: undefined }, 'bad_request', /message_type is required/],
      [owner, { ...valid, id: 10, message: '' }, 'bad_request', /frame field 'message' must not be empty/],
    ]
    for (const [stream, frame, code, message] of cases) {
      const answer = await stream.ask(frame as { id: number })
      assert.equal(answer.type, 'error', JSON.stringify(frame))
      assert.equal(answer.error, code, JSON.stringify(answer))
      assert.match(String(answer.message), message)
    }
    // Frames that are not a send or an ack at all.
    owner.send({ type: 'publish', id: 10 })
    owner.socket.send('{"type":"send",')
    owner.socket.send(Buffer.from([1, 2, 3]))
    owner.send({ ...valid, id: { nested: true } })
    await owner.waitFor(() => owner.frames.filter((f) => f.type === 'error').length >= cases.length - 1 + 4, 'four more errors')
    const last = owner.frames.filter((f) => f.type === 'error').slice(-4)
    assert.ok(last.every((f) => f.error === 'bad_request'), JSON.stringify(last))
    assert.equal(last[3]!.id, undefined, 'an id that cannot be echoed is not')
    // Nothing was stored, and the socket still works.
    assert.equal((await api.call('GET', '/groups/rules')).body.next_seq, 1)
    assert.equal((await owner.ask({ ...valid, id: 'ok' })).type, 'sent')
    await owner.close()
    await stranger.close()
  })

  test('a frame larger than MAX_MESSAGE_BYTES closes the socket with 1009; the service goes on', async () => {
    await group('big', ['big'])
    const stream = await StreamClient.connect(running.httpPort, 'big')
    stream.send({ type: 'send', id: 1, group_id: 'big', message: text64('x'.repeat(64 * 1024)), message_type: 'Application' })
    await stream.waitFor(() => stream.closeCode !== undefined, 'the close')
    assert.equal(stream.closeCode, 1009)
    const again = await StreamClient.connect(running.httpPort, 'big')
    assert.equal((await again.ask({ type: 'send', id: 2, group_id: 'big', message: text64('small'), message_type: 'Application' })).seq, 1)
    await again.close()
  })

  test(`a flood of ${MAX_UNANSWERED_FRAMES * 10} sends without waiting (reading pauses at ${MAX_UNANSWERED_FRAMES} unanswered) is answered completely, in order`, async () => {
    await group('flood', ['f', 'g'])
    const ws = new WebSocket(`ws://127.0.0.1:${running.httpPort}/clients/f/stream`)
    await once(ws, 'open')
    const answers: Array<{ type: string; seq?: number }> = []
    ws.on('message', (data) => answers.push(JSON.parse(data.toString())))
    const total = MAX_UNANSWERED_FRAMES * 10
    for (let i = 0; i < total; i++) ws.send(JSON.stringify({ type: 'send', group_id: 'flood', message: text64(`f-${i}`), message_type: 'Application' }))
    const deadline = Date.now() + 20_000
    while (answers.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(answers.map((a) => a.seq), Array.from({ length: total }, (_, i) => i + 1))
    ws.close()
  })
})

describe('send frames at shutdown', () => {
  test('frames in progress when the service stops are answered or refused as unavailable, the socket gets 1001, and nothing runs against a closed store', async () => {
    const logged: Array<{ level: number; msg: string }> = []
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line)) })
    const running = await startTestService({ mlsValidation: 'permissive' }, logger)
    const api = new RestApi(running.httpPort)
    assert.equal((await api.call('POST', '/groups', { group_id: 'bye', creator_id: 'x' })).status, 201)
    assert.equal((await api.call('POST', '/groups/bye/members', { client_id: 'y' })).status, 200)
    const sender = await StreamClient.connect(running.httpPort, 'x')
    const receiver = await StreamClient.connect(running.httpPort, 'y')
    for (let i = 0; i < 200; i++) sender.send({ type: 'send', id: i, group_id: 'bye', message: text64(`bye-${i}`), message_type: 'Application' })
    await sender.waitFor(() => sender.frames.length >= 1, 'the first answer')
    await running.close()
    await sender.waitFor(() => sender.closeCode !== undefined, 'the close')
    assert.equal(sender.closeCode, 1001)
    assert.ok(sender.frames.every((f) => f.type === 'sent' || f.error === 'unavailable'), JSON.stringify(sender.frames.find((f) => f.type !== 'sent')))
    const sent = sender.frames.filter((f) => f.type === 'sent').map((f) => f.seq)
    assert.deepEqual(sent, Array.from({ length: sent.length }, (_, i) => i + 1))
    assert.deepEqual(logged.filter((l) => l.level >= 40).map((l) => l.msg), [])
    await receiver.close()
  })
})

test('a frame beyond the limit is the client\'s mistake: closed with 1009 and not logged as an error of the service', async () => {
  const lines: Array<{ level: number; msg: string }> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const running = await startTestService({ mlsValidation: 'permissive', maxMessageBytes: 64 * 1024 }, logger)
  try {
    const stream = await StreamClient.connect(running.httpPort, 'loud')
    stream.send({ type: 'send', id: 1, group_id: 'g', message: text64('x'.repeat(64 * 1024)), message_type: 'Application' })
    await stream.waitFor(() => stream.closeCode !== undefined, 'the close')
    assert.equal(stream.closeCode, 1009)
    await new Promise((r) => setTimeout(r, 100))
    assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [])
    assert.ok(lines.some((l) => l.level === 20 && /bad frame from the client/.test(l.msg)), 'logged at debug')
  } finally {
    await running.close()
  }
})
