import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { RestApi, RestMember } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { StreamClient } from '../helpers/stream-client.js'
import { connect, LineReader } from '../tcp/helpers.js'

const b64 = (text: string) => Buffer.from(text).toString('base64')

/**
 * MESSAGE_RATE_LIMIT: the messages of one sender are counted per window through every door
 * together (REST, TCP, a stream's send frames, commit bundles), over real sockets.
 */
describe('MESSAGE_RATE_LIMIT', () => {
  let running: RunningService
  let api: RestApi
  let tcp: LineReader
  before(async () => {
    running = await startTestService({ messageRateLimit: { count: 3, windowSeconds: 4 }, mlsValidation: 'permissive', tcpMlsValidation: 'permissive' })
    api = new RestApi(running.httpPort)
    tcp = new LineReader(await connect(running.tcpPort!))
  })
  after(async () => {
    tcp.socket.end()
    await running.close()
  })

  const relay = (sender: string, text: string) => api.call('POST', '/groups/chat/messages', { sender_id: sender, message: b64(text), message_type: 'Application' })
  const tcpRelay = async (sender: string, text: string) => {
    tcp.socket.write(`${JSON.stringify({ type: 'RelayMessage', group_id: 'chat', sender_id: sender, message: [...Buffer.from(text)], message_type: 'Application' })}\n`)
    return tcp.next()
  }

  test('one sender\'s messages count across REST, TCP and its stream; beyond the limit nothing is stored, and the answer says when to retry; others are not held back', async () => {
    assert.equal((await api.call('POST', '/groups', { group_id: 'chat', creator_id: 'alice' })).status, 201)
    assert.equal((await api.call('POST', '/groups/chat/members', { client_id: 'bob' })).status, 200)
    const stream = await StreamClient.connect(running.httpPort, 'alice')
    try {
      assert.equal((await relay('alice', 'one')).status, 201)
      assert.equal((await tcpRelay('alice', 'two')).success, true)
      assert.equal((await stream.ask({ type: 'send', id: 'three', group_id: 'chat', message: b64('three'), message_type: 'Application' })).type, 'sent')

      const refused = await relay('alice', 'four')
      assert.equal(refused.status, 429)
      assert.equal(refused.body.error, 'rate_limited')
      assert.match(refused.body.message, /^alice sent 3 messages within 4 s \(MESSAGE_RATE_LIMIT\); retry in [1-4] s$/)
      assert.ok([1, 2, 3, 4].includes(refused.body.retry_after as number), String(refused.body.retry_after))
      assert.equal(refused.headers.get('retry-after'), String(refused.body.retry_after))
      const overTcp = await tcpRelay('alice', 'five')
      assert.equal(overTcp.type, 'Error')
      assert.equal(overTcp.code, 'rate_limited')
      assert.match(overTcp.message, /^Failed to relay message: alice sent 3 messages/)
      const overStream = await stream.ask({ type: 'send', id: 'six', group_id: 'chat', message: b64('six'), message_type: 'Application' })
      assert.equal(overStream.type, 'error')
      assert.equal(overStream.error, 'rate_limited')
      assert.equal(overStream.id, 'six')

      // Bob is not held back by alice's messages.
      assert.equal((await relay('bob', 'from bob')).status, 201)
      const log = await api.messages('chat')
      assert.deepEqual(log.map((m) => Buffer.from(m.message as string, 'base64').toString()), ['one', 'two', 'three', 'from bob'], 'refused messages were stored')

      const metrics = await (await fetch(`${api.base}/metrics`)).text()
      assert.match(metrics, /mlsds_requests_rejected_total\{door="rest",error="rate_limited"\} 1/)
      assert.match(metrics, /mlsds_requests_rejected_total\{door="tcp",error="rate_limited"\} 1/)

      // A new window opens once this one has passed.
      await new Promise((resolve) => setTimeout(resolve, (refused.body.retry_after as number) * 1000 + 100))
      assert.equal((await relay('alice', 'later')).status, 201)
    } finally {
      stream.close()
    }
  })
})

describe('MESSAGE_RATE_LIMIT with real MLS', () => {
  let running: RunningService
  let api: RestApi
  before(async () => {
    running = await startTestService({ messageRateLimit: { count: 2, windowSeconds: 60 } })
    api = new RestApi(running.httpPort)
  })
  after(() => running.close())

  test('a commit bundle counts as a message: beyond the limit it is refused before the group moves to the next epoch', async () => {
    const alice = new RestMember(await MlsTestClient.create('alice'), api, 'mls-chat')
    await alice.client.createGroup('mls-chat')
    assert.equal((await api.call('POST', '/groups', { group_id: 'mls-chat', creator_id: 'alice' })).status, 201)
    assert.equal((await alice.say('hello')).status, 201)
    assert.equal((await alice.commit(await alice.client.selfUpdate())).status, 201)
    const refused = await alice.commit(await alice.client.selfUpdate())
    alice.client.rollback()
    assert.equal(refused.status, 429)
    assert.equal(refused.body.error, 'rate_limited')
    assert.equal((await api.group('mls-chat')).epoch, 1, 'the refused commit moved the group')
    assert.equal((await alice.say('again')).status, 429)
  })
})
