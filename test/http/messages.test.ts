import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helpers/app.js'

const b64 = (text: string) => Buffer.from(text).toString('base64')

describe('REST messages', () => {
  let app: FastifyInstance
  before(async () => {
    ;({ app } = await buildTestApp({ mlsValidation: 'permissive' }))
    await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'chat', creator_id: 'alice' } })
    await app.inject({ method: 'POST', url: '/groups/chat/members', payload: { client_id: 'bob' } })
  })
  after(() => app.close())

  const relay = (group: string, sender_id: unknown, message: unknown, message_type: unknown = 'Application') =>
    app.inject({ method: 'POST', url: `/groups/${group}/messages`, payload: { sender_id, message, message_type } })

  test('relay assigns seq 1, 2, 3 and reads return them in order with every field', async () => {
    const types = ['Application', 'Commit', 'Proposal', 'Welcome', 'Add'] as const
    for (const [i, type] of types.entries()) {
      const res = await relay('chat', i % 2 ? 'bob' : 'alice', b64(`m${i}`), type)
      assert.equal(res.statusCode, 201)
      assert.deepEqual(res.json(), { group_id: 'chat', seq: i + 1, epoch: 0, message_type: type })
    }
    const res = await app.inject({ method: 'GET', url: '/groups/chat/messages' })
    assert.equal(res.statusCode, 200)
    const { group_id, messages } = res.json()
    assert.equal(group_id, 'chat')
    assert.deepEqual(messages.map((m: { seq: number }) => m.seq), [1, 2, 3, 4, 5])
    assert.deepEqual(messages.map((m: { message_type: string }) => m.message_type), [...types])
    assert.equal(messages[1].sender_id, 'bob')
    assert.equal(Buffer.from(messages[3].message, 'base64').toString(), 'm3')
    assert.ok(!Number.isNaN(Date.parse(messages[0].received_at)))
    // Opaque legacy bytes carry no epoch and no content type.
    assert.equal(messages[0].epoch, null)
    assert.equal(messages[0].content_type, null)
    assert.equal((await app.inject({ method: 'GET', url: '/groups/chat' })).json().next_seq, 6)
  })

  test('after and limit page through the log', async () => {
    await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'pages', creator_id: 'p' } })
    for (let i = 0; i < 25; i++) await relay('pages', 'p', b64(`x${i}`))
    let res = await app.inject({ method: 'GET', url: '/groups/pages/messages?after=10&limit=5' })
    assert.deepEqual(res.json().messages.map((m: { seq: number }) => m.seq), [11, 12, 13, 14, 15])
    res = await app.inject({ method: 'GET', url: '/groups/pages/messages?after=25' })
    assert.deepEqual(res.json().messages, [])
    res = await app.inject({ method: 'GET', url: '/groups/pages/messages?after=1000000' })
    assert.deepEqual(res.json().messages, [])
  })

  test('limit defaults to 100 and is at most 1000', async () => {
    await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'big', creator_id: 'p' } })
    for (let i = 0; i < 1005; i++) await relay('big', 'p', b64(`big-${i}`))
    let res = await app.inject({ method: 'GET', url: '/groups/big/messages' })
    assert.equal(res.json().messages.length, 100)
    res = await app.inject({ method: 'GET', url: '/groups/big/messages?limit=1000' })
    assert.equal(res.json().messages.length, 1000)
    assert.equal(res.json().messages[999].seq, 1000)
    for (const bad of ['limit=1001', 'limit=0', 'limit=-1', 'after=-1', 'after=x', 'limit=2.5', 'surprise=1', 'after=%20', 'after=', 'after=0x10', 'limit=1e2', 'limit=1.0', 'after=+1']) {
      res = await app.inject({ method: 'GET', url: `/groups/big/messages?${bad}` })
      assert.equal(res.statusCode, 400, bad)
      assert.equal(res.json().error, 'bad_request')
      assert.match(res.json().message, /^query/, bad)
    }
    // An integer beyond what a seq can be: the schema names the bound. Not in decimal digits: says so.
    res = await app.inject({ method: 'GET', url: '/groups/big/messages?after=9007199254740993' })
    assert.deepEqual([res.statusCode, res.json()], [400, { error: 'bad_request', message: "query field 'after' must be <= 9007199254740991" }])
    res = await app.inject({ method: 'GET', url: '/groups/big/messages?after=1e309' })
    assert.deepEqual([res.statusCode, res.json()], [400, { error: 'bad_request', message: "query field 'after' must be a whole number in decimal digits" }])
  })

  test('a page holds at most MAX_MESSAGE_BYTES of message data, at least one message; the rest is read on with after', async (t) => {
    // Before, a page was `limit` messages whatever their size: 1,000 large ones were a 500
    // (more JSON than a string can hold) after gigabytes of memory.
    const { app: small } = await buildTestApp({ mlsValidation: 'permissive', maxMessageBytes: 64 * 1024 })
    t.after(() => small.close())
    await small.inject({ method: 'POST', url: '/groups', payload: { group_id: 'large', creator_id: 'alice' } })
    await small.inject({ method: 'POST', url: '/groups/large/members', payload: { client_id: 'bob' } })
    for (let i = 0; i < 10; i++) {
      const res = await small.inject({ method: 'POST', url: '/groups/large/messages', payload: { sender_id: 'alice', message: b64(String(i).repeat(20 * 1024)), message_type: 'Application' } })
      assert.equal(res.statusCode, 201)
    }
    const pages: number[][] = []
    for (let after = 0; ;) {
      const res = await small.inject({ method: 'GET', url: `/groups/large/messages?after=${after}&limit=1000` })
      assert.equal(res.statusCode, 200)
      const seqs = res.json().messages.map((m: { seq: number }) => m.seq)
      if (seqs.length === 0) break
      pages.push(seqs)
      after = seqs.at(-1)
    }
    assert.deepEqual(pages, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]], '3 × 20 KiB fit in 64 KiB, 4 do not')

    const queue = (await small.inject({ method: 'GET', url: '/clients/bob/messages?limit=1000' })).json()
    assert.deepEqual([queue.deliveries.map((d: { seq: number }) => d.seq), queue.next_after], [[1, 2, 3], 3])
    const rest = (await small.inject({ method: 'GET', url: `/clients/bob/messages?after=${queue.next_after}&limit=2` })).json()
    assert.deepEqual([rest.deliveries.map((d: { seq: number }) => d.seq), rest.next_after], [[4, 5], 5], 'and the limit still holds')
  })

  test('concurrent senders get gap-free seqs', async () => {
    await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'race', creator_id: 's0' } })
    for (let s = 1; s < 10; s++) await app.inject({ method: 'POST', url: '/groups/race/members', payload: { client_id: `s${s}` } })
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => relay('race', `s${i % 10}`, b64(`r${i}`))))
    const seqs = results.map((r) => r.json().seq as number).sort((a, b) => a - b)
    assert.deepEqual(seqs, Array.from({ length: 300 }, (_, i) => i + 1))
  })

  test('unknown group is a 404; a non-member sender is a 403; neither stores anything', async () => {
    let res = await relay('nowhere', 'alice', b64('x'))
    assert.equal(res.statusCode, 404)
    assert.deepEqual(res.json(), { error: 'group_not_found', message: 'Group not found: nowhere' })
    const before = (await app.inject({ method: 'GET', url: '/groups/chat' })).json().next_seq
    res = await relay('chat', 'mallory', b64('x'))
    assert.equal(res.statusCode, 403)
    assert.deepEqual(res.json(), { error: 'not_member', message: 'Sender not in group: mallory' })
    assert.equal((await app.inject({ method: 'GET', url: '/groups/chat' })).json().next_seq, before)
    res = await app.inject({ method: 'GET', url: '/groups/nowhere/messages' })
    assert.equal(res.statusCode, 404)
  })

  test('a member who left can no longer send', async () => {
    await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'leavers', creator_id: 'a' } })
    await app.inject({ method: 'POST', url: '/groups/leavers/members', payload: { client_id: 'b' } })
    assert.equal((await relay('leavers', 'b', b64('hi'))).statusCode, 201)
    await app.inject({ method: 'DELETE', url: '/groups/leavers/members/b' })
    assert.equal((await relay('leavers', 'b', b64('hi again'))).statusCode, 403)
  })

  describe('bad input is a 400 naming the field', () => {
    const cases: Array<[string, Record<string, unknown>, RegExp, string]> = [
      ['bad base64', { sender_id: 'alice', message: 'a*b=', message_type: 'Application' }, /message.*base64/, 'invalid_base64'],
      ['an empty message', { sender_id: 'alice', message: '', message_type: 'Application' }, /body field 'message' must not be empty/, 'bad_request'],
      ['base64 of less than one group', { sender_id: 'alice', message: 'AA', message_type: 'Application' }, /message.*standard base64/, 'invalid_base64'],
      ['URL-safe base64', { sender_id: 'alice', message: 'ab-_', message_type: 'Application' }, /message.*standard base64/, 'invalid_base64'],
      ['base64 with a character beyond ASCII', { sender_id: 'alice', message: '\u0141AAA', message_type: 'Application' }, /message.*standard base64/, 'invalid_base64'],
      ['a message that is an array', { sender_id: 'alice', message: [1, 2], message_type: 'Application' }, /message.*string/, 'bad_request'],
      ['an unknown message_type', { sender_id: 'alice', message: 'AAAA', message_type: 'Telegram' }, /message_type.*one of/, 'bad_request'],
      ['a missing message_type', { sender_id: 'alice', message: 'AAAA' }, /message_type/, 'bad_request'],
      ['a missing sender', { message: 'AAAA', message_type: 'Application' }, /sender_id/, 'bad_request'],
      ['a numeric sender', { sender_id: 1, message: 'AAAA', message_type: 'Application' }, /sender_id/, 'bad_request'],
    ]
    for (const [name, payload, pattern, code] of cases) {
      test(name, async () => {
        const res = await app.inject({ method: 'POST', url: '/groups/chat/messages', payload })
        assert.equal(res.statusCode, 400)
        assert.equal(res.json().error, code)
        assert.match(res.json().message, pattern)
      })
    }
  })
})
