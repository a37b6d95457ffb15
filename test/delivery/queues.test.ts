import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { useTestService } from '../helpers/service.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { StreamClient } from '../helpers/stream-client.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')

describe('per-client queues: pull, ack, retention, idempotent publish', () => {
  const service = useTestService({ mlsValidation: 'permissive', queueMaxMessages: 20 })

  const group = async (id: string, members: string[]) => {
    await service.api.call('POST', '/groups', { group_id: id, creator_id: members[0] })
    for (const m of members.slice(1)) await service.api.call('POST', `/groups/${id}/members`, { client_id: m })
  }
  const send = (g: string, sender: string, text: string, headers?: Record<string, string>) =>
    service.api.call('POST', `/groups/${g}/messages`, { sender_id: sender, message: text64(text), message_type: 'Application' }, headers)

  test('one queue across groups with its own gap-free seq; pull pages with next_after; ack drops a prefix', async () => {
    await group('q1', ['x', 'reader'])
    await group('q2', ['y', 'reader'])
    await send('q1', 'x', 'one')
    await send('q2', 'y', 'two')
    await send('q1', 'x', 'three')
    let page = await service.api.call('GET', '/clients/reader/messages?limit=2')
    assert.equal(page.status, 200)
    assert.deepEqual(page.body.deliveries.map((d: { seq: number }) => d.seq), [1, 2])
    assert.deepEqual(page.body.deliveries.map((d: { group_id: string }) => d.group_id), ['q1', 'q2'])
    assert.equal(page.body.next_after, 2)
    const first = page.body.deliveries[0]
    assert.deepEqual(Object.keys(first).sort(), ['content_type', 'epoch', 'group_id', 'group_seq', 'kind', 'message', 'message_type', 'received_at', 'sender_id', 'seq'])
    assert.equal(first.kind, 'message')
    page = await service.api.call('GET', `/clients/reader/messages?after=${page.body.next_after}`)
    assert.deepEqual(page.body.deliveries.map((d: { seq: number }) => d.seq), [3])

    let ack = await service.api.call('POST', '/clients/reader/ack', { up_to: 2 })
    assert.deepEqual(ack.body, { client_id: 'reader', acked_up_to: 2, remaining: 1 })
    page = await service.api.call('GET', '/clients/reader/messages')
    assert.deepEqual(page.body.deliveries.map((d: { seq: number }) => d.seq), [3])
    // Acknowledged deliveries are not a gap.
    assert.equal(page.body.gap, undefined)
    ack = await service.api.call('POST', '/clients/reader/ack', { up_to: 1 })
    assert.equal(ack.body.acked_up_to, 2, 'an older ack changes nothing')
    for (const bad of [{ up_to: 4 }, { up_to: -1 }, { up_to: 'x' }, {}]) {
      const res = await service.api.call('POST', '/clients/reader/ack', bad)
      assert.equal(res.status, 400, JSON.stringify(bad))
      assert.equal(res.body.error, 'bad_request')
    }
    assert.deepEqual((await service.api.call('GET', '/clients/nobody/messages')).body, { client_id: 'nobody', deliveries: [], next_after: 0 })
  })

  test('the sender gets no copy of its own message', async () => {
    await group('self', ['me', 'you'])
    await send('self', 'me', 'mine')
    assert.deepEqual((await service.api.call('GET', '/clients/me/messages')).body.deliveries, [])
    assert.equal((await service.api.call('GET', '/clients/you/messages')).body.deliveries.length, 1)
  })

  test('retention drops the oldest unacknowledged deliveries and says so with a gap marker, over pull and stream', async () => {
    await group('flood', ['f', 'slow'])
    for (let i = 0; i < 30; i++) await send('flood', 'f', `f-${i}`)
    const page = await service.api.call('GET', '/clients/slow/messages?after=0&limit=100')
    assert.deepEqual(page.body.gap, { missed_from: 1, first_available_seq: 11 })
    assert.deepEqual(page.body.deliveries.map((d: { seq: number }) => d.seq), Array.from({ length: 20 }, (_, i) => i + 11))
    assert.equal(page.body.next_after, 30)
    // A reader already past the dropped part sees no gap.
    assert.equal((await service.api.call('GET', '/clients/slow/messages?after=15')).body.gap, undefined)

    const stream = await StreamClient.connect(service.running.httpPort, 'slow', 0)
    await stream.waitFor(() => stream.deliveries.length >= 20, 'the retained deliveries')
    assert.deepEqual(stream.frames[0], { type: 'gap', missed_from: 1, first_available_seq: 11 })
    assert.equal(stream.deliveries[0]!.seq, 11)
    await stream.close()
  })

  test('idempotent publish: the same request retried 5 times gets one seq and one delivery per member', async () => {
    await group('idem', ['s', 'r1', 'r2'])
    const key = { 'idempotency-key': 'order-42' }
    const results = []
    for (let i = 0; i < 5; i++) results.push(await send('idem', 's', 'exactly once', key))
    assert.ok(results.every((r) => r.status === 201))
    assert.deepEqual(new Set(results.map((r) => r.body.seq)), new Set([1]))
    // Concurrent retries too.
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => send('idem', 's', 'racing retry', { 'idempotency-key': 'order-43' })))
    assert.deepEqual(concurrent.map((r) => r.status), [201, 201, 201, 201, 201])
    assert.deepEqual(new Set(concurrent.map((r) => r.body.seq)), new Set([2]))
    // The key used again for other bytes is refused, with the seq it stands for; nothing is stored.
    const reused = await send('idem', 's', 'another message', { 'idempotency-key': 'order-43' })
    assert.equal(reused.status, 422)
    assert.equal(reused.body.error, 'idempotency_key_reused')
    assert.equal(reused.body.seq, 2)
    const racing = await Promise.all(Array.from({ length: 5 }, (_, i) => send('idem', 's', `racing ${i}`, { 'idempotency-key': 'order-44' })))
    assert.deepEqual(racing.map((r) => r.status).sort(), [201, 422, 422, 422, 422], 'one of them is stored, under the key')
    const stored = racing.find((r) => r.status === 201)!.body.seq
    assert.equal(stored, 3)
    // Opaque legacy bytes without a key keep the original's semantics: each relay is a message.
    assert.equal((await send('idem', 's', 'placeholder')).body.seq, 4)
    assert.equal((await send('idem', 's', 'placeholder')).body.seq, 5)
    for (const member of ['r1', 'r2']) {
      const deliveries = (await service.api.call('GET', `/clients/${member}/messages`)).body.deliveries
      assert.deepEqual(deliveries.map((d: { group_seq: number }) => d.group_seq), [1, 2, 3, 4, 5], member)
    }
    assert.equal((await service.api.call('GET', '/groups/idem')).body.next_seq, 6)
    const bad = await send('idem', 's', 'x', { 'idempotency-key': 'k'.repeat(300) })
    assert.equal(bad.status, 400)
  })

  test('the same MLS message sent again is a retry even without a key: one seq, one delivery each', async () => {
    const alice = await MlsTestClient.create('alice', 1)
    await alice.createGroup('idem-mls')
    await group('idem-mls', ['alice', 'bob'])
    const message = Buffer.from(await alice.sendApplication('hello once')).toString('base64')
    const results = await Promise.all(Array.from({ length: 5 }, () => service.api.call('POST', '/groups/idem-mls/messages', { sender_id: 'alice', message })))
    assert.deepEqual(results.map((r) => r.status), [201, 201, 201, 201, 201])
    assert.deepEqual(new Set(results.map((r) => r.body.seq)), new Set([1]))
    assert.equal((await service.api.call('GET', '/clients/bob/messages')).body.deliveries.length, 1)
  })
})
