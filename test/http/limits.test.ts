import assert from 'node:assert/strict'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from '../helpers/app.js'
import { TEST_STORE } from '../helpers/test-store.js'

/** Over a real socket, because body limits and broken bodies live on the wire. */
describe('REST limits and broken requests (real HTTP)', () => {
  const limit = 64 * 1024
  let app: FastifyInstance
  let base: string
  let port: number
  before(async () => {
    ;({ app } = await buildTestApp({ maxMessageBytes: limit, mlsValidation: 'permissive' }))
    await app.listen({ host: '127.0.0.1', port: 0 })
    port = (app.server.address() as AddressInfo).port
    base = `http://127.0.0.1:${port}`
    await fetch(`${base}/groups`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ group_id: 'g', creator_id: 'a' }) })
  })
  after(() => app.close())

  const post = (path: string, body: string | Uint8Array, type = 'application/json') =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': type }, body })

  test('a JSON body over MAX_MESSAGE_BYTES is a 413 and stores nothing', async () => {
    const message = Buffer.alloc(limit).toString('base64')
    const res = await post('/groups/g/messages', JSON.stringify({ sender_id: 'a', message, message_type: 'Application' }))
    assert.equal(res.status, 413)
    const body = await res.json() as { error: string; message: string }
    assert.equal(body.error, 'payload_too_large')
    assert.match(body.message, new RegExp(String(limit)))
    const group = await (await fetch(`${base}/groups/g`)).json() as { next_seq: number }
    assert.equal(group.next_seq, 1)
  })

  test('a raw message/mls body over the limit is a 413', async () => {
    const res = await fetch(`${base}/key-packages/big`, { method: 'PUT', headers: { 'content-type': 'message/mls' }, body: new Uint8Array(limit + 1) })
    assert.equal(res.status, 413)
    assert.equal((await res.json() as { error: string }).error, 'payload_too_large')
  })

  test('message/mls on a route that takes JSON is a 415 that names the route, and stores nothing', async () => {
    const res = await post('/groups/g/messages', new Uint8Array([0, 1, 0, 2]), 'message/mls')
    assert.equal(res.status, 415)
    const body = await res.json() as { error: string; message: string }
    assert.deepEqual(body, { error: 'unsupported_media_type', message: 'POST /groups/:group/messages takes application/json, not message/mls' })
    const group = await (await fetch(`${base}/groups/g`)).json() as { next_seq: number }
    assert.equal(group.next_seq, 1)
  })

  test('a path that is not valid percent-encoded UTF-8, or a segment longer than any id, is a 400 in the usual shape', async () => {
    for (const path of ['/groups/%ED%A0%80', '/groups/%E0%A4%A/messages', `/groups/${'g'.repeat(5000)}`]) {
      const res = await fetch(`${base}${path}`)
      assert.equal(res.status, 400, path.slice(0, 40))
      const body = await res.json() as Record<string, unknown>
      assert.deepEqual(Object.keys(body), ['error', 'message'], path.slice(0, 40))
      assert.equal(body.error, 'bad_request')
      assert.match(String(body.message), path.length > 1000 ? /longer than any id can be \(256 characters\)/ : /not valid percent-encoded UTF-8/)
    }
    // A 300-character id fits Fastify's parameter but not an id: the schema's 400.
    const long = await fetch(`${base}/groups/${'g'.repeat(300)}`)
    assert.equal(long.status, 400)
    assert.equal((await long.json() as { error: string }).error, 'bad_request')
  })

  test('a body with a __proto__ key is refused, and says why; a syntax error says where', async () => {
    const res = await post('/groups/g/messages', '{"sender_id":"a","message":"AAAA","__proto__":{"admin":true}}')
    assert.equal(res.status, 400)
    const body = await res.json() as { error: string; message: string }
    assert.equal(body.error, 'bad_request')
    assert.match(body.message, /^body has a "__proto__" key/)
    const truncated = await post('/groups', '{"group_id":"a",')
    assert.equal(truncated.status, 400)
    const refused = await truncated.json() as { error: string; message: string }
    assert.equal(refused.error, 'bad_request')
    assert.match(refused.message, /^body is not valid JSON: /)
    assert.doesNotMatch(refused.message, /__proto__/)
  })

  test('a body just under the limit is accepted', async () => {
    const message = Buffer.alloc(Math.floor(((limit - 200) * 3) / 4 / 3) * 3).toString('base64')
    const res = await post('/groups/g/messages', JSON.stringify({ sender_id: 'a', message, message_type: 'Application' }))
    assert.equal(res.status, 201)
  })

  test('a truncated body (the client stops early) changes nothing and the server stays up', async () => {
    const body = JSON.stringify({ sender_id: 'a', message: 'AAAA', message_type: 'Application' })
    await new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(`POST /groups/g/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length + 50}\r\n\r\n${body}`)
        setTimeout(() => socket.destroy(), 50)
      })
      socket.on('close', () => resolve())
      socket.on('error', () => {})
    })
    const group = await (await fetch(`${base}/groups/g`)).json() as { next_seq: number }
    assert.ok(group.next_seq <= 2, 'the truncated message was not stored')
    const health = await fetch(`${base}/health`)
    assert.equal(health.status, 200)
  })

  test('an unknown route is a 404 in the error shape; a known one with a wrong method a 405', async () => {
    const res = await fetch(`${base}/nothing/here?x=1`)
    assert.equal(res.status, 404)
    assert.deepEqual(await res.json(), { error: 'not_found', message: 'Route GET /nothing/here not found' })
    const wrongMethod = await fetch(`${base}/health`, { method: 'PATCH' })
    assert.equal(wrongMethod.status, 405)
    assert.equal(wrongMethod.headers.get('allow'), 'GET, HEAD')
    assert.equal((await wrongMethod.json() as { error: string }).error, 'method_not_allowed')
  })

  test('health, docs and the OpenAPI document are served', async () => {
    assert.deepEqual(await (await fetch(`${base}/health`)).json(), { status: 'ok', store: TEST_STORE })
    const docs = await fetch(`${base}/docs`)
    assert.equal(docs.status, 200)
    assert.match(await docs.text(), /swagger/i)
    const spec = await (await fetch(`${base}/openapi.json`)).json() as { openapi: string; paths: Record<string, unknown> }
    assert.match(spec.openapi, /^3\./)
    assert.ok(spec.paths['/groups/{group}/messages'])
  })
})
