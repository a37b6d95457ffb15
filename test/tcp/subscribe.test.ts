import assert from 'node:assert/strict'
import type net from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { RestApi } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { assertGapFree, StreamClient } from '../helpers/stream-client.js'
import { connect, LineReader, request, sleep } from './helpers.js'
import { TcpSubscriber, text } from './subscriber.js'
import { TcpApi } from './tcp-api.js'

const text64 = (t: string) => Buffer.from(t).toString('base64')
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)

/** Both doors over one service; opaque payloads (permissive) keep these tests about delivery, not MLS. */
describe('live delivery over the legacy TCP door: Subscribe, Delivery, Ack', () => {
  let running: RunningService
  let api: RestApi
  let port: number
  before(async () => {
    running = await startTestService({ mlsValidation: 'permissive' })
    api = new RestApi(running.httpPort)
    port = running.tcpPort!
  })
  after(() => running.close())

  const group = async (id: string, members: string[]) => {
    assert.equal((await api.call('POST', '/groups', { group_id: id, creator_id: members[0] })).status, 201)
    for (const m of members.slice(1)) assert.equal((await api.call('POST', `/groups/${id}/members`, { client_id: m })).status, 200)
  }
  const send = async (g: string, sender: string, t: string) => {
    const res = await api.call('POST', `/groups/${g}/messages`, { sender_id: sender, message: text64(t), message_type: 'Application' })
    assert.equal(res.status, 201, JSON.stringify(res.body))
    return res.body.seq as number
  }

  test('a TCP subscriber gets what a REST sender sends: Subscribed first, then every delivery once, in order', async () => {
    await group('rest-to-tcp', ['alice', 'bob'])
    const bob = await TcpSubscriber.open(port, 'bob')
    assert.deepEqual(bob.frames[0], { type: 'Subscribed', client_id: 'bob', after: 0 })
    const total = 200
    const groupSeqs: number[] = []
    for (let i = 0; i < total; i++) groupSeqs.push(await send('rest-to-tcp', 'alice', `m-${i}`))
    await bob.waitFor(() => bob.deliveries.length >= total, 'every delivery')
    await sleep(200)
    assert.equal(bob.deliveries.length, total, 'exactly once')
    assert.equal(bob.others.length, 1, 'only the Subscribed answer besides deliveries')
    assert.equal(assertGapFree(bob.deliveries.map((d) => d.seq)), undefined)
    assert.deepEqual(bob.deliveries.map((d) => d.group_seq), groupSeqs)
    assert.deepEqual(bob.deliveries.map((d) => text(d.message)), range(0, total - 1).map((i) => `m-${i}`))
    const first = bob.deliveries[0]!
    assert.deepEqual(Object.keys(first).sort(), ['content_type', 'epoch', 'group_id', 'group_seq', 'kind', 'message', 'message_type', 'received_at', 'sender_id', 'seq', 'type'])
    assert.equal(first.group_id, 'rest-to-tcp')
    assert.equal(first.sender_id, 'alice')
    assert.equal(first.kind, 'message')
    assert.equal(first.message_type, 'Application')
    bob.close()
  })

  test('a WebSocket subscriber gets what a TCP RelayMessage sender sends', async () => {
    const sender = await TcpApi.connect(port)
    assert.equal((await sender.createGroup('tcp-to-ws', 'carol')).type, 'GroupResponse')
    assert.equal((await sender.call({ type: 'JoinGroup', group_id: 'tcp-to-ws', client_id: 'dave' })).type, 'GroupResponse')
    const dave = await StreamClient.connect(running.httpPort, 'dave')
    const total = 150
    const answers = await Promise.all(range(0, total - 1).map((i) => sender.relay('tcp-to-ws', 'carol', Buffer.from(`w-${i}`))))
    assert.ok(answers.every((a) => a.type === 'MessageResponse' && a.success === true))
    await dave.waitFor(() => dave.deliveries.length >= total, "dave's deliveries")
    assert.equal(assertGapFree(dave.deliveries.map((d) => d.seq!)), undefined)
    assert.deepEqual(dave.deliveries.map((d) => Buffer.from(String(d.message), 'base64').toString()), range(0, total - 1).map((i) => `w-${i}`))
    await dave.close()
    sender.close()
  })

  test('with a cursor: replays what is queued after it, then goes live, with no gap and no duplicate', async () => {
    await group('cursor', ['erin', 'frank'])
    for (let i = 1; i <= 10; i++) await send('cursor', 'erin', `c-${i}`)
    const frank = await TcpSubscriber.open(port, 'frank', 4)
    assert.deepEqual(frank.frames[0], { type: 'Subscribed', client_id: 'frank', after: 4 })
    await frank.waitFor(() => frank.deliveries.length >= 6, 'the replay')
    for (let i = 11; i <= 20; i++) await send('cursor', 'erin', `c-${i}`)
    await frank.waitFor(() => frank.deliveries.length >= 16, 'the live part')
    await sleep(200)
    assert.deepEqual(frank.deliveries.map((d) => d.seq), range(5, 20))
    assert.deepEqual(frank.deliveries.map((d) => text(d.message)), range(5, 20).map((i) => `c-${i}`))
    frank.close()
  })

  test('a subscriber that disconnects mid-stream and resumes with its last seq loses nothing and sees nothing twice', async () => {
    await group('resume', ['gina', 'hank'])
    const total = 300
    const sender = await TcpApi.connect(port)
    let sending = true
    const sent = (async () => {
      for (let i = 0; i < total; i++) assert.equal((await sender.relay('resume', 'gina', Buffer.from(`r-${i}`))).type, 'MessageResponse')
      sending = false
    })()
    const received: Array<Record<string, any>> = []
    let connections = 0
    while (received.length < total) {
      const hank = await TcpSubscriber.open(port, 'hank', received.at(-1)?.seq ?? 0)
      await hank.waitFor(() => hank.deliveries.length >= 40 || (!sending && received.length + hank.deliveries.length >= total), 'some deliveries')
      hank.close()
      received.push(...hank.deliveries)
      connections++
    }
    await sent
    sender.close()
    assert.ok(connections >= 3, `only ${connections} connections`)
    assert.equal(assertGapFree(received.map((d) => d.seq)), undefined)
    assert.deepEqual(received.map((d) => text(d.message)), range(0, total - 1).map((i) => `r-${i}`))
  })

  test('Ack drops deliveries (seen over REST); other requests are answered in order on the subscribed connection', async () => {
    await group('acks', ['ivan', 'judy'])
    for (let i = 1; i <= 5; i++) await send('acks', 'ivan', `a-${i}`)
    const judy = await TcpSubscriber.open(port, 'judy')
    await judy.waitFor(() => judy.deliveries.length >= 5, 'five deliveries')
    // Pipelined: the answers come back in request order, Delivery lines aside.
    judy.send({ type: 'Ack', up_to: 3 })
    judy.send({ type: 'GetGroup', group_id: 'acks' })
    judy.send({ type: 'Ack', up_to: 99 })
    judy.send({ type: 'Ack', up_to: 4, client_id: 'ivan' })
    judy.send({ type: 'Subscribe', client_id: 'judy' })
    judy.send('{"type":"Ack"}')
    judy.send({ type: 'Ack', up_to: 3, client_id: 'judy' })
    await judy.waitFor(() => judy.others.length >= 8, 'seven answers')
    const [, ack, got, beyond, other, again, missing, same] = judy.others
    assert.deepEqual(ack, { type: 'AckResponse', client_id: 'judy', acked_up_to: 3, remaining: 2 })
    assert.equal(got?.type, 'GroupResponse')
    assert.deepEqual(got?.members, ['ivan', 'judy'])
    assert.equal(beyond?.type, 'Error')
    assert.equal(beyond?.code, 'bad_request')
    assert.match(beyond?.message, /^Failed to ack: /)
    assert.equal(other?.code, 'bad_request')
    assert.match(other?.message, /subscribed as judy/)
    assert.equal(again?.type, 'Error')
    assert.equal(again?.code, 'bad_request')
    assert.match(again?.message, /^Failed to subscribe: .*already subscribed/)
    assert.equal(missing?.type, 'Error')
    assert.match(missing?.message, /^Invalid message format: missing field `up_to`/)
    assert.deepEqual(same, { type: 'AckResponse', client_id: 'judy', acked_up_to: 3, remaining: 2 })
    const page = await api.call('GET', '/clients/judy/messages')
    assert.deepEqual(page.body.deliveries.map((d: { seq: number }) => d.seq), [4, 5])
    // The stream goes on after all that, still exactly once.
    await send('acks', 'ivan', 'a-6')
    await judy.waitFor(() => judy.deliveries.length >= 6, 'the sixth delivery')
    assert.deepEqual(judy.deliveries.map((d) => d.seq), range(1, 6))
    judy.close()

    // Without a subscription, Ack names its client (the twin of POST /clients/{c}/ack).
    assert.deepEqual(await request(port, { type: 'Ack', client_id: 'judy', up_to: 5 }), { type: 'AckResponse', client_id: 'judy', acked_up_to: 5, remaining: 1 })
    const unnamed = await request(port, { type: 'Ack', up_to: 1 })
    assert.equal(unnamed.code, 'bad_request')
    assert.match(unnamed.message, /^Failed to ack: Not subscribed/)
  })

  test('bad Subscribe input is refused and leaves the connection usable; response types are refused as requests', async () => {
    const client = await TcpSubscriber.connect(port, 'ok-client', -1)
    client.send({ type: 'Subscribe' })
    client.send({ type: 'Subscribe', client_id: 'x', after: 'soon' })
    client.send({ type: 'Subscribe', client_id: '', after: 0 })
    client.send({ type: 'ListKeyPackages' })
    await client.waitFor(() => client.frames.length >= 5, 'five answers')
    const [negative, missing, mistyped, empty, list] = client.frames
    for (const answer of [negative, missing, mistyped, empty]) {
      assert.equal(answer?.type, 'Error')
      assert.match(answer?.message, /^Invalid message format: /)
    }
    assert.match(negative?.message, /after/)
    assert.match(missing?.message, /missing field `client_id`/)
    assert.equal(list?.type, 'KeyPackageListResponse')
    client.close()
    for (const type of ['Subscribed', 'Delivery', 'Gap', 'AckResponse']) {
      assert.deepEqual(await request(port, { type, client_id: 'x', seq: 1 }), { type: 'Error', message: 'Invalid message type for server' }, type)
    }
  })

  test("the client's half-close does not end a stream (`echo Subscribe | nc` tails a queue)", async () => {
    await group('tail', ['kim', 'lee'])
    const lee = await TcpSubscriber.connect(port, 'lee', 0, { allowHalfOpen: true })
    lee.socket.end()
    await lee.waitFor(() => lee.frames.length >= 1, 'Subscribed')
    await send('tail', 'kim', 'after the half-close')
    await lee.waitFor(() => lee.deliveries.length >= 1, 'a delivery')
    assert.equal(text(lee.deliveries[0]!.message), 'after the half-close')
    assert.equal(lee.ended, false)
    lee.close()
  })
})

test('retention: a subscriber behind the dropped part gets a Gap frame, then what is left', async () => {
  const running = await startTestService({ mlsValidation: 'permissive', queueMaxMessages: 5 })
  try {
    const api = new RestApi(running.httpPort)
    await api.call('POST', '/groups', { group_id: 'g', creator_id: 'fast' })
    await api.call('POST', '/groups/g/members', { client_id: 'slow' })
    for (let i = 1; i <= 8; i++) await api.call('POST', '/groups/g/messages', { sender_id: 'fast', message: text64(`${i}`), message_type: 'Application' })
    const slow = await TcpSubscriber.open(running.tcpPort!, 'slow')
    await slow.waitFor(() => slow.deliveries.length >= 5, 'the rest')
    assert.deepEqual(slow.frames[1], { type: 'Gap', missed_from: 1, first_available_seq: 4 })
    assert.deepEqual(slow.deliveries.map((d) => d.seq), range(4, 8))
    slow.close()
  } finally {
    await running.close()
  }
})

test('a subscriber that reads nothing under a fast sender is cut off, the server stops buffering for it, and it resumes from its cursor', async () => {
  const running = await startTestService({ mlsValidation: 'permissive', streamMaxBufferedBytes: 64 * 1024, streamStallTimeoutSeconds: 1 })
  try {
    const port = running.tcpPort!
    const sender = await TcpApi.connect(port)
    await sender.createGroup('firehose', 'fast')
    await sender.call({ type: 'JoinGroup', group_id: 'firehose', client_id: 'sloth' })
    const sloth = await TcpSubscriber.open(port, 'sloth')
    sloth.socket.pause() // reads nothing from now on

    // ~16 KB of JSON per delivery (bytes as numbers): about 24 MB in all, far beyond the socket buffers.
    const total = 1500
    const payload = 'x'.repeat(4000)
    for (let start = 0; start < total; start += 100) {
      const batch = range(start, Math.min(start + 100, total) - 1).map((i) => sender.relay('firehose', 'fast', Buffer.from(`${i}:${payload}`)))
      assert.ok((await Promise.all(batch)).every((a) => a.type === 'MessageResponse'))
    }
    await sleep(1500)
    sloth.socket.resume()
    await sloth.waitFor(() => sloth.ended, 'the cut-off')
    const before = sloth.deliveries.length
    assert.ok(before < total, `the slow consumer was sent everything (${before}) instead of being cut off`)
    assert.equal(assertGapFree(sloth.deliveries.map((d) => d.seq)), undefined)
    // The Error line comes last, when it could still be written before the connection ended.
    const last = sloth.frames.at(-1)
    if (last?.type !== 'Delivery') {
      assert.equal(last?.type, 'Error')
      assert.equal(last?.code, 'slow_consumer')
      assert.match(last?.message, /^Slow consumer: /)
    }

    const resumed = await TcpSubscriber.open(port, 'sloth', sloth.lastSeq)
    await resumed.waitFor(() => resumed.lastSeq >= total, 'the rest', 60_000)
    const all = [...sloth.deliveries, ...resumed.deliveries]
    assert.equal(all.length, total)
    assert.equal(assertGapFree(all.map((d) => d.seq)), undefined)
    assert.deepEqual(all.map((d) => Number(text(d.message).split(':')[0])), range(0, total - 1))
    resumed.close()
    sender.close()
  } finally {
    await running.close()
  }
})

test('a subscriber that half-closed and then went away is noticed without a delivery: its socket and stream are released', { timeout: 10_000 }, async () => {
  // A 50 ms keep-alive period, so the empty-write check runs at once.
  const running = await startTestService({ mlsValidation: 'permissive', streamPingIntervalSeconds: 0.05 })
  try {
    const streamsOpen = async () => Number(/^mlsds_streams_open (\d+)$/m.exec((await running.service.metrics.render()).text)?.[1])
    const accepted = new Promise<net.Socket>((resolve) => running.tcp!.server.once('connection', resolve))
    const gone = await TcpSubscriber.connect(running.tcpPort!, 'gone', 0, { allowHalfOpen: true })
    const serverSide = await accepted
    await gone.waitFor(() => gone.frames.length >= 1, 'Subscribed')
    assert.equal(await streamsOpen(), 1)
    const closed = new Promise((resolve) => serverSide.once('close', resolve))
    const sawEnd = new Promise((resolve) => serverSide.once('end', resolve))
    gone.socket.end()
    await sawEnd // the server now reads no more; only a write can find out the rest
    gone.socket.resetAndDestroy()
    await closed
    assert.equal(await streamsOpen(), 0)
  } finally {
    await running.close()
  }
})

test('TCP_IDLE_TIMEOUT ends a connection that stalls mid-request, but never a Subscribe stream', { timeout: 20_000 }, async () => {
  const running = await startTestService({ mlsValidation: 'permissive', tcpIdleTimeoutSeconds: 1 })
  try {
    const quiet = await TcpSubscriber.open(running.tcpPort!, 'uma')
    // A plain connection that sends half a request, then nothing.
    const half = new LineReader(await connect(running.tcpPort!))
    half.socket.write('{"type":"ListKeyPackages"')
    await half.ended(10_000)
    await sleep(1500)
    assert.equal(quiet.ended, false, 'a quiet subscriber is not idle')
    quiet.close()
  } finally {
    await running.close()
  }
})

test('server close() ends subscribed connections promptly', async () => {
  const running = await startTestService({ mlsValidation: 'permissive' })
  const subscribers = await Promise.all(['p', 'q', 'r'].map((c) => TcpSubscriber.open(running.tcpPort!, c)))
  const started = Date.now()
  await running.close()
  const elapsed = Date.now() - started
  for (const s of subscribers) await s.waitFor(() => s.ended, 'the end', 2000)
  assert.ok(elapsed < 1000, `close took ${elapsed} ms`)
})
