import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helpers/app.js'

const b64 = (text: string) => Buffer.from(text).toString('base64')

describe('REST key packages', () => {
  let app: FastifyInstance
  before(async () => {
    ;({ app } = await buildTestApp({ mlsValidation: 'permissive' }))
  })
  after(() => app.close())

  test('store one, fetch it back without removing it, replace it', async () => {
    let res = await app.inject({ method: 'PUT', url: '/key-packages/alice', payload: { key_package: b64('kp-1') } })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { client_id: 'alice', stored: 1, available: 1 })

    for (let i = 0; i < 2; i++) {
      res = await app.inject({ method: 'GET', url: '/key-packages/alice' })
      assert.equal(res.statusCode, 200)
      assert.equal(res.json().client_id, 'alice')
      assert.equal(res.json().key_package, b64('kp-1'))
      assert.match(res.json().key_package_ref, /^[0-9a-f]{64}$/)
    }

    res = await app.inject({ method: 'PUT', url: '/key-packages/alice', payload: { key_package: b64('kp-2') } })
    assert.deepEqual(res.json(), { client_id: 'alice', stored: 1, available: 1 })
    res = await app.inject({ method: 'GET', url: '/key-packages/alice' })
    assert.equal(res.json().key_package, b64('kp-2'))
  })

  test('a batch stores every package of the request', async () => {
    const res = await app.inject({ method: 'PUT', url: '/key-packages/batcher', payload: { key_packages: [b64('a'), b64('b')] } })
    assert.equal(res.statusCode, 200)
    assert.equal(res.json().stored, 2)
  })

  test('raw bytes with Content-Type message/mls are stored byte for byte', async () => {
    const raw = Buffer.from([0, 1, 2, 250, 251, 255])
    let res = await app.inject({ method: 'PUT', url: '/key-packages/raw-client', payload: raw, headers: { 'content-type': 'message/mls' } })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { client_id: 'raw-client', stored: 1, available: 1 })
    res = await app.inject({ method: 'GET', url: '/key-packages/raw-client' })
    assert.deepEqual(Buffer.from(res.json().key_package, 'base64'), raw)
  })

  test('an empty raw body is a 400 and stores nothing', async () => {
    const res = await app.inject({ method: 'PUT', url: '/key-packages/empty-raw', payload: Buffer.alloc(0), headers: { 'content-type': 'message/mls' } })
    assert.equal(res.statusCode, 400)
    assert.equal(res.json().error, 'bad_request')
    assert.equal((await app.inject({ method: 'GET', url: '/key-packages/empty-raw' })).statusCode, 404)
  })

  test('list is sorted and includes hostile ids as plain ids', async () => {
    for (const id of ['zed', '__proto__', 'constructor', 'toString']) {
      const res = await app.inject({ method: 'PUT', url: `/key-packages/${id}`, payload: { key_package: b64(`kp-${id}`) } })
      assert.equal(res.statusCode, 200, id)
    }
    const res = await app.inject({ method: 'GET', url: '/key-packages' })
    assert.equal(res.statusCode, 200)
    const { clients } = res.json() as { clients: string[] }
    assert.deepEqual(clients, [...clients].sort())
    for (const id of ['zed', '__proto__', 'constructor', 'toString']) assert.ok(clients.includes(id), id)
    const proto = await app.inject({ method: 'GET', url: '/key-packages/__proto__' })
    assert.equal(proto.json().key_package, b64('kp-__proto__'))
  })

  test('the list comes in pages: `limit`, and `next_after` to ask for the next page until it is absent', async () => {
    const ids = Array.from({ length: 7 }, (_, i) => `page-${i}`)
    for (const id of ids) assert.equal((await app.inject({ method: 'PUT', url: `/key-packages/${id}`, payload: { key_package: b64(`kp-${id}`) } })).statusCode, 200)
    const seen: string[] = []
    let after: string | undefined = 'page-'
    let pages = 0
    while (after !== undefined) {
      const res: { statusCode: number; json(): unknown } = await app.inject({ method: 'GET', url: '/key-packages', query: { after, limit: '3' } })
      assert.equal(res.statusCode, 200)
      const body = res.json() as { clients: string[]; next_after?: string }
      seen.push(...body.clients.filter((id) => id.startsWith('page-')))
      if (body.next_after !== undefined) assert.equal(body.next_after, body.clients.at(-1))
      after = body.next_after
      pages++
    }
    assert.deepEqual(seen, ids)
    assert.ok(pages >= 3)
    // Exactly a page full, nothing after: no next_after.
    const last = (await app.inject({ method: 'GET', url: '/key-packages', query: { after: 'page-3', limit: '3' } })).json()
    assert.deepEqual(last.clients.slice(0, 3), ['page-4', 'page-5', 'page-6'])
    // Without limit, at most 1000 a page.
    assert.ok(Array.isArray((await app.inject({ method: 'GET', url: '/key-packages' })).json().clients))
    for (const query of [{ limit: '0' }, { limit: '1001' }, { limit: 'x' }, { after: '' }, { other: '1' }] as Record<string, string>[]) {
      const res = await app.inject({ method: 'GET', url: '/key-packages', query })
      assert.equal(res.statusCode, 400, JSON.stringify(query))
      assert.equal(res.json().error, 'bad_request', JSON.stringify(query))
    }
    assert.equal((await app.inject({ method: 'GET', url: '/key-packages', query: { after: '__proto__' } })).statusCode, 200)
  })

  test('fetching for a client without packages is a 404 in the error shape', async () => {
    const res = await app.inject({ method: 'GET', url: '/key-packages/nobody' })
    assert.equal(res.statusCode, 404)
    assert.deepEqual(Object.keys(res.json()).sort(), ['error', 'message'])
    assert.equal(res.json().error, 'key_package_not_found')
    assert.match(res.json().message, /nobody/)
  })

  test('delete removes every package and is idempotent', async () => {
    await app.inject({ method: 'PUT', url: '/key-packages/deleteme', payload: { key_package: b64('x') } })
    let res = await app.inject({ method: 'DELETE', url: '/key-packages/deleteme' })
    assert.equal(res.statusCode, 204)
    assert.equal(res.body, '')
    assert.equal((await app.inject({ method: 'GET', url: '/key-packages/deleteme' })).statusCode, 404)
    assert.ok(!(await app.inject({ method: 'GET', url: '/key-packages' })).json().clients.includes('deleteme'))
    res = await app.inject({ method: 'DELETE', url: '/key-packages/deleteme' })
    assert.equal(res.statusCode, 204)
  })

  describe('bad input is a 400 naming the field, and stores nothing', () => {
    const cases: Array<[string, unknown, RegExp, string]> = [
      ['not base64', { key_package: 'not base64!' }, /key_package.*base64/, 'invalid_base64'],
      ['base64 without padding', { key_package: 'aGVsbG8' }, /key_package.*base64/, 'invalid_base64'],
      ['empty string', { key_package: '' }, /key_package/, 'bad_request'],
      ['a number', { key_package: 42 }, /key_package.*string/, 'bad_request'],
      ['both fields', { key_package: b64('a'), key_packages: [b64('b')] }, /exactly one/, 'bad_request'],
      ['neither field', {}, /exactly one/, 'bad_request'],
      ['an unknown field', { key_package: b64('a'), extra: 1 }, /extra/, 'bad_request'],
      ['an empty batch', { key_packages: [] }, /key_packages/, 'bad_request'],
      ['bad base64 inside a batch', { key_packages: [b64('ok'), '****'] }, /key_packages\.1.*base64/, 'invalid_base64'],
      ['an array body', [1, 2], /body/, 'bad_request'],
    ]
    for (const [name, payload, pattern, code] of cases) {
      test(name, async () => {
        const res = await app.inject({ method: 'PUT', url: '/key-packages/victim', payload: payload as object })
        assert.equal(res.statusCode, 400)
        assert.equal(res.json().error, code)
        assert.match(res.json().message, pattern)
        assert.equal((await app.inject({ method: 'GET', url: '/key-packages/victim' })).statusCode, 404)
      })
    }

    test('an id longer than 256 characters', async () => {
      const res = await app.inject({ method: 'PUT', url: `/key-packages/${'x'.repeat(257)}`, payload: { key_package: b64('a') } })
      assert.equal(res.statusCode, 400)
      assert.match(res.json().message, /client/)
    })

    test('an id of exactly 256 characters is fine', async () => {
      const id = 'é'.repeat(256)
      const res = await app.inject({ method: 'PUT', url: `/key-packages/${encodeURIComponent(id)}`, payload: { key_package: b64('a') } })
      assert.equal(res.statusCode, 200)
      assert.equal(res.json().client_id, id)
    })

    test('characters are code points: 256 emoji (512 UTF-16 units) are an id, 257 are not', async () => {
      const id = '😀'.repeat(256)
      const res = await app.inject({ method: 'PUT', url: `/key-packages/${encodeURIComponent(id)}`, payload: { key_package: b64('a') } })
      assert.equal(res.statusCode, 200, res.body)
      assert.equal(res.json().client_id, id)
      const group = await app.inject({ method: 'POST', url: '/groups', payload: { group_id: id, creator_id: id } })
      assert.equal(group.statusCode, 201, group.body)
      const over = await app.inject({ method: 'PUT', url: `/key-packages/${encodeURIComponent(`${id}😀`)}`, payload: { key_package: b64('a') } })
      assert.equal(over.statusCode, 400)
      assert.match(over.json().message, /256 characters/)
    })
  })
})
