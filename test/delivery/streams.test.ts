import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { after, before, describe, test } from 'node:test'
import { useTestService } from '../helpers/service.js'
import { assertGapFree, StreamClient, type StreamFrame } from '../helpers/stream-client.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')

/** Opaque payloads (permissive mode) keep these tests about ordering, not MLS. */
describe('live delivery over WebSocket streams', () => {
  const service = useTestService({ mlsValidation: 'permissive' })

  const group = async (id: string, members: string[]) => {
    assert.equal((await service.api.call('POST', '/groups', { group_id: id, creator_id: members[0] })).status, 201)
    for (const m of members.slice(1)) assert.equal((await service.api.call('POST', `/groups/${id}/members`, { client_id: m })).status, 200)
  }
  const send = (g: string, sender: string, text: string) =>
    service.api.call('POST', `/groups/${g}/messages`, { sender_id: sender, message: text64(text), message_type: 'Application' })

  test('three online members and one offline: 500 messages from several senders, each member gets every other sender\'s message once, in order', async () => {
    const members = ['m1', 'm2', 'm3', 'm4']
    await group('fanout', members)
    const online = await Promise.all(members.slice(0, 3).map((m) => StreamClient.connect(service.running.httpPort, m)))

    const sent: Array<{ sender: string; text: string; seq: number }> = []
    // Several senders at once, 500 messages in all.
    await Promise.all(members.map(async (sender, s) => {
      for (let i = 0; i < 125; i++) {
        const text = `${sender}-${i}`
        const res = await send('fanout', sender, text)
        assert.equal(res.status, 201)
        sent.push({ sender, text, seq: res.body.seq })
      }
      void s
    }))
    const inGroupOrder = [...sent].sort((a, b) => a.seq - b.seq)
    assert.equal(assertGapFree(inGroupOrder.map((m) => m.seq)), undefined)

    const expectedFor = (member: string) => inGroupOrder.filter((m) => m.sender !== member)
    const check = (member: string, deliveries: StreamFrame[]) => {
      const expected = expectedFor(member)
      assert.equal(deliveries.length, expected.length, member)
      assert.equal(assertGapFree(deliveries.map((d) => d.seq!)), undefined, member)
      assert.deepEqual(deliveries.map((d) => d.group_seq), expected.map((m) => m.seq), member)
      assert.deepEqual(deliveries.map((d) => Buffer.from(String(d.message), 'base64').toString()), expected.map((m) => m.text), member)
    }
    for (const [i, stream] of online.entries()) {
      const member = members[i]!
      await stream.waitFor(() => stream.deliveries.length >= expectedFor(member).length, `${member}'s deliveries`)
      check(member, stream.deliveries)
      await stream.close()
    }

    // The offline member connects later with its cursor (nothing seen yet: 0).
    const late = await StreamClient.connect(service.running.httpPort, 'm4', 0)
    await late.waitFor(() => late.deliveries.length >= expectedFor('m4').length, "m4's replay")
    check('m4', late.deliveries)
    // Nothing more arrives: exactly once.
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(late.deliveries.length, expectedFor('m4').length)
    await late.close()
  })

  test('a subscriber that disconnects mid-stream and reconnects with its last seq loses nothing and sees nothing twice', async () => {
    await group('reconnect', ['sender', 'reader'])
    const total = 300
    let sending = true
    const sender = (async () => {
      for (let i = 0; i < total; i++) assert.equal((await send('reconnect', 'sender', `r-${i}`)).status, 201)
      sending = false
    })()
    const received: StreamFrame[] = []
    let cursor = 0
    let reconnects = 0
    while (received.length < total) {
      const stream = await StreamClient.connect(service.running.httpPort, 'reader', cursor)
      // Take a few, then drop the connection while the sender keeps going.
      await stream.waitFor(() => stream.deliveries.length >= 40 || (!sending && cursor + stream.deliveries.length >= total), 'some deliveries')
      await stream.close()
      received.push(...stream.deliveries)
      cursor = received.at(-1)?.seq ?? cursor
      reconnects++
    }
    await sender
    assert.ok(reconnects >= 3, `only ${reconnects} connections`)
    assert.equal(assertGapFree(received.map((d) => d.seq!)), undefined)
    assert.deepEqual(received.map((d) => Buffer.from(String(d.message), 'base64').toString()), Array.from({ length: total }, (_, i) => `r-${i}`))
  })

  test('acks over the socket drop what was delivered; a reconnect from 0 then starts after the ack', async () => {
    await group('acks', ['a', 'b'])
    for (let i = 0; i < 5; i++) await send('acks', 'a', `ack-${i}`)
    const stream = await StreamClient.connect(service.running.httpPort, 'b')
    await stream.waitFor(() => stream.deliveries.length >= 5, 'five deliveries')
    stream.send({ type: 'ack', up_to: 3 })
    await stream.waitFor(() => stream.frames.some((f) => f.type === 'ack'), 'the ack answer')
    assert.deepEqual(stream.frames.find((f) => f.type === 'ack'), { type: 'ack', acked_up_to: 3, remaining: 2 })
    stream.send({ type: 'ack', up_to: 99 })
    stream.send('not an object')
    await stream.waitFor(() => stream.frames.filter((f) => f.type === 'error').length >= 2, 'two errors')
    assert.ok(stream.frames.filter((f) => f.type === 'error').every((f) => f.error === 'bad_request'))
    await stream.close()
    const again = await StreamClient.connect(service.running.httpPort, 'b', 0)
    await again.waitFor(() => again.deliveries.length >= 2, 'the unacked deliveries')
    assert.deepEqual(again.deliveries.map((d) => d.seq), [4, 5])
    await again.close()
  })

  test('membership applies from the next message: a member who left stops receiving, a new member gets only later messages', async () => {
    await group('members', ['owner', 'leaver'])
    await send('members', 'owner', 'before')
    await service.api.call('DELETE', '/groups/members/members/leaver')
    await service.api.call('POST', '/groups/members/members', { client_id: 'joiner' })
    await send('members', 'owner', 'after')
    const leaver = (await service.api.call('GET', '/clients/leaver/messages')).body
    const joiner = (await service.api.call('GET', '/clients/joiner/messages')).body
    assert.deepEqual(leaver.deliveries.filter((d: StreamFrame) => d.group_id === 'members').map((d: StreamFrame) => Buffer.from(String(d.message), 'base64').toString()), ['before'])
    assert.deepEqual(joiner.deliveries.map((d: StreamFrame) => Buffer.from(String(d.message), 'base64').toString()), ['after'])
  })

  test('a stream request with a bad cursor or id is refused before the upgrade', async () => {
    for (const path of ['/clients/x/stream?after=-1', '/clients/x/stream?after=abc', `/clients/${'x'.repeat(300)}/stream`]) {
      const ws = new WebSocket(`ws://127.0.0.1:${service.running.httpPort}${path}`)
      ws.on('error', () => {})
      const [, response] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage]
      assert.equal(response.statusCode, 400, path)
      response.resume()
    }
  })
})
