import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helpers/app.js'

describe('REST groups', () => {
  let app: FastifyInstance
  before(async () => {
    ;({ app } = await buildTestApp({ mlsValidation: 'permissive' }))
  })
  after(() => app.close())

  const create = (group_id: unknown, creator_id: unknown = 'alice') =>
    app.inject({ method: 'POST', url: '/groups', payload: { group_id, creator_id } })

  test('create: 201 with the creator as first member; a second create is a 409', async () => {
    let res = await create('g1')
    assert.equal(res.statusCode, 201)
    const { created_at, ...rest } = res.json() as Record<string, unknown>
    assert.deepEqual(rest, { group_id: 'g1', creator_id: 'alice', members: ['alice'], next_seq: 1, epoch: 0 })
    assert.ok(!Number.isNaN(Date.parse(String(created_at))))
    res = await create('g1', 'mallory')
    assert.equal(res.statusCode, 409)
    assert.deepEqual(res.json(), { error: 'group_exists', message: 'Group already exists: g1' })
    res = await app.inject({ method: 'GET', url: '/groups/g1' })
    assert.equal(res.json().creator_id, 'alice')
  })

  test('read: members and next_seq; unknown group is a 404', async () => {
    await create('g-read')
    let res = await app.inject({ method: 'GET', url: '/groups/g-read' })
    assert.equal(res.statusCode, 200)
    assert.equal(res.json().group_id, 'g-read')
    assert.deepEqual(res.json().members, ['alice'])
    assert.equal(res.json().next_seq, 1)
    res = await app.inject({ method: 'GET', url: '/groups/missing' })
    assert.equal(res.statusCode, 404)
    assert.deepEqual(res.json(), { error: 'group_not_found', message: 'Group not found: missing' })
  })

  test('join is idempotent and keeps join order; unknown group is a 404', async () => {
    await create('g-join')
    let res = await app.inject({ method: 'POST', url: '/groups/g-join/members', payload: { client_id: 'bob' } })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json().members, ['alice', 'bob'])
    res = await app.inject({ method: 'POST', url: '/groups/g-join/members', payload: { client_id: 'bob' } })
    assert.deepEqual(res.json().members, ['alice', 'bob'])
    res = await app.inject({ method: 'POST', url: '/groups/g-join/members', payload: { client_id: 'carol' } })
    assert.deepEqual(res.json().members, ['alice', 'bob', 'carol'])
    res = await app.inject({ method: 'POST', url: '/groups/nope/members', payload: { client_id: 'bob' } })
    assert.equal(res.statusCode, 404)
    assert.equal(res.json().error, 'group_not_found')
  })

  test('leave: 204, then the member is gone; leaving again is a 404', async () => {
    await create('g-leave')
    await app.inject({ method: 'POST', url: '/groups/g-leave/members', payload: { client_id: 'bob' } })
    let res = await app.inject({ method: 'DELETE', url: '/groups/g-leave/members/bob' })
    assert.equal(res.statusCode, 204)
    assert.deepEqual((await app.inject({ method: 'GET', url: '/groups/g-leave' })).json().members, ['alice'])
    res = await app.inject({ method: 'DELETE', url: '/groups/g-leave/members/bob' })
    assert.equal(res.statusCode, 404)
    assert.equal(res.json().error, 'member_not_found')
    res = await app.inject({ method: 'DELETE', url: '/groups/unknown/members/bob' })
    assert.equal(res.json().error, 'group_not_found')
  })

  test('delete removes the group and its messages; a second delete is a 404', async () => {
    await create('g-del')
    await app.inject({ method: 'POST', url: '/groups/g-del/messages', payload: { sender_id: 'alice', message: 'AAAA', message_type: 'Application' } })
    let res = await app.inject({ method: 'DELETE', url: '/groups/g-del' })
    assert.equal(res.statusCode, 204)
    assert.equal((await app.inject({ method: 'GET', url: '/groups/g-del/messages' })).statusCode, 404)
    res = await app.inject({ method: 'DELETE', url: '/groups/g-del' })
    assert.equal(res.statusCode, 404)
    // The id is free again and starts over at seq 1.
    res = await create('g-del')
    assert.equal(res.json().next_seq, 1)
  })

  test('hostile ids behave like any other id', async () => {
    for (const id of ['__proto__', 'constructor', 'hasOwnProperty', 'prototype']) {
      let res = await create(id, id)
      assert.equal(res.statusCode, 201, id)
      assert.deepEqual(res.json().members, [id])
      res = await app.inject({ method: 'POST', url: `/groups/${id}/members`, payload: { client_id: '__proto__' } })
      assert.equal(res.statusCode, 200)
      res = await app.inject({ method: 'GET', url: `/groups/${id}` })
      assert.equal(res.json().group_id, id)
    }
    assert.equal((await app.inject({ method: 'GET', url: '/groups/valueOf' })).statusCode, 404)
  })

  describe('bad input', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['missing group_id', { creator_id: 'a' }, /group_id/],
      ['missing creator_id', { group_id: 'a' }, /creator_id/],
      ['empty group_id', { group_id: '', creator_id: 'a' }, /group_id/],
      ['numeric group_id', { group_id: 7, creator_id: 'a' }, /group_id.*string/],
      ['null creator_id', { group_id: 'x', creator_id: null }, /creator_id/],
      ['too long group_id', { group_id: 'g'.repeat(257), creator_id: 'a' }, /group_id.*256/],
      ['unknown field', { group_id: 'x', creator_id: 'a', admin: true }, /admin/],
    ]
    for (const [name, payload, pattern] of cases) {
      test(name, async () => {
        const res = await app.inject({ method: 'POST', url: '/groups', payload: payload as object })
        assert.equal(res.statusCode, 400)
        assert.equal(res.json().error, 'bad_request')
        assert.match(res.json().message, pattern)
      })
    }

    test('malformed JSON', async () => {
      const res = await app.inject({ method: 'POST', url: '/groups', payload: '{"group_id": "x",', headers: { 'content-type': 'application/json' } })
      assert.equal(res.statusCode, 400)
      assert.equal(res.json().error, 'bad_request')
      assert.match(res.json().message, /JSON/)
    })

    test('no body', async () => {
      const res = await app.inject({ method: 'POST', url: '/groups', headers: { 'content-type': 'application/json' } })
      assert.equal(res.statusCode, 400)
    })

    test('a text body is a 415', async () => {
      const res = await app.inject({ method: 'POST', url: '/groups', payload: 'group', headers: { 'content-type': 'text/plain' } })
      assert.equal(res.statusCode, 415)
      assert.equal(res.json().error, 'unsupported_media_type')
    })

    test('join with a missing client_id', async () => {
      await create('g-bad-join')
      const res = await app.inject({ method: 'POST', url: '/groups/g-bad-join/members', payload: {} })
      assert.equal(res.statusCode, 400)
      assert.match(res.json().message, /client_id/)
    })
  })
})
