import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { WebSocket } from 'ws'
import { buildTestApp } from '../helpers/app.js'

/** Over real HTTP with the headers a browser sends, because CORS lives in headers on the wire. */
async function listen(corsOrigins: readonly string[]): Promise<{ app: FastifyInstance; base: string }> {
  const { app } = await buildTestApp({ corsOrigins })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

/** Opens bob's stream as a browser page of `origin` would (no Origin: as a non-browser client); 101 when it opened. */
async function openStream(base: string, origin?: string): Promise<{ status: number; body?: { error: string; message: string } }> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/clients/bob/stream`, origin === undefined ? {} : { origin })
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close()
      resolve({ status: 101 })
    })
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk.toString()))
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
    })
    ws.once('error', reject)
  })
}

const CHAT = 'https://chat.example.com'
const preflight = (base: string, path: string, origin: string, method = 'POST') => fetch(`${base}${path}`, {
  method: 'OPTIONS',
  headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'content-type,idempotency-key' },
})

describe('CORS with CORS_ORIGINS listing one origin', () => {
  let app: FastifyInstance
  let base: string
  before(async () => ({ app, base } = await listen([CHAT, 'http://localhost:5173'])))
  after(() => app.close())

  test('an unknown path is still a 404, though the preflight route takes any path', async () => {
    const res = await fetch(`${base}/nothing/here`)
    assert.equal(res.status, 404)
    assert.equal((await res.json() as { error: string }).error, 'not_found')
    const wrong = await fetch(`${base}/groups/g`, { method: 'PATCH' })
    assert.equal(wrong.status, 405)
    assert.equal(wrong.headers.get('allow'), 'DELETE, GET, HEAD')
  })

  test('a preflight from a listed origin allows the methods and headers the API uses, for 10 minutes', async () => {
    const res = await preflight(base, '/groups/g/messages', CHAT)
    assert.equal(res.status, 204)
    assert.equal(res.headers.get('access-control-allow-origin'), CHAT)
    assert.match(res.headers.get('vary') ?? '', /origin/i)
    assert.deepEqual(res.headers.get('access-control-allow-methods')?.split(/,\s*/), ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'])
    assert.deepEqual(res.headers.get('access-control-allow-headers')?.split(/,\s*/), ['content-type', 'accept', 'idempotency-key', 'authorization'])
    assert.equal(res.headers.get('access-control-max-age'), '600')
  })

  test('answers to a listed origin carry its origin, errors included; the request itself is served as usual', async () => {
    let res = await fetch(`${base}/groups`, { method: 'POST', headers: { origin: CHAT, 'content-type': 'application/json' }, body: JSON.stringify({ group_id: 'cors-g', creator_id: 'alice' }) })
    assert.equal(res.status, 201)
    assert.equal(res.headers.get('access-control-allow-origin'), CHAT)
    res = await fetch(`${base}/groups/cors-g`, { headers: { origin: 'http://localhost:5173' } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('access-control-allow-origin'), 'http://localhost:5173')
    res = await fetch(`${base}/groups/no-such-group`, { headers: { origin: CHAT } })
    assert.equal(res.status, 404)
    assert.equal(res.headers.get('access-control-allow-origin'), CHAT)
    // The page may read why to sign in again (AUTH=jwt) and when to retry.
    assert.equal(res.headers.get('access-control-expose-headers'), 'www-authenticate, retry-after')
    assert.equal((await res.json() as { error: string }).error, 'group_not_found')
    res = await fetch(`${base}/groups`, { method: 'POST', headers: { origin: CHAT, 'content-type': 'application/json' }, body: '{"group_id":' })
    assert.equal(res.status, 400)
    assert.equal(res.headers.get('access-control-allow-origin'), CHAT)
  })

  test('another origin gets no Access-Control-Allow-Origin, on answers or preflights, so its pages can neither read nor send', async () => {
    let res = await fetch(`${base}/groups/cors-g`, { headers: { origin: 'https://evil.example' } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('access-control-allow-origin'), null)
    res = await preflight(base, '/groups/g/messages', 'https://evil.example')
    assert.equal(res.headers.get('access-control-allow-origin'), null)
    // A suffix or prefix of a listed origin is another origin.
    res = await fetch(`${base}/health`, { headers: { origin: `${CHAT}.evil.example` } })
    assert.equal(res.headers.get('access-control-allow-origin'), null)
  })

  test('streams open for listed origins, the service\'s own and clients without an Origin; another site\'s page gets a 403', async () => {
    assert.equal((await openStream(base)).status, 101, 'not a browser')
    assert.equal((await openStream(base, CHAT)).status, 101)
    assert.equal((await openStream(base, 'http://localhost:5173')).status, 101)
    assert.equal((await openStream(base, base)).status, 101, 'a page of the service itself')
    // Behind a TLS proxy the page is https and the service sees the same Host: the scheme is not compared.
    assert.equal((await openStream(base, base.replace('http:', 'https:'))).status, 101)
    for (const origin of ['https://evil.example', `${CHAT}.evil.example`, 'null', base.replace(/:(\d+)$/, (_, port: string) => `:${Number(port) + 1}`), `ftp://${new URL(base).host}`]) {
      const refused = await openStream(base, origin)
      assert.equal(refused.status, 403, origin)
      assert.equal(refused.body?.error, 'forbidden_origin', origin)
      assert.equal(refused.body?.message, `Pages of ${JSON.stringify(origin)} may not open streams: list the origin in CORS_ORIGINS`)
    }
  })

  test('the OpenAPI document does not list the preflight route', async () => {
    const doc = await (await fetch(`${base}/openapi.json`)).json() as { paths: Record<string, Record<string, unknown>> }
    assert.ok(doc.paths['/groups'])
    for (const [path, methods] of Object.entries(doc.paths)) assert.ok(!('options' in methods), path)
  })
})

describe('CORS with CORS_ORIGINS=*', () => {
  let app: FastifyInstance
  let base: string
  before(async () => ({ app, base } = await listen(['*'])))
  after(() => app.close())

  test('every origin may call, and gets *', async () => {
    const res = await fetch(`${base}/health`, { headers: { origin: 'https://anywhere.example' } })
    assert.equal(res.headers.get('access-control-allow-origin'), '*')
    const pre = await preflight(base, '/key-packages/bob', 'https://anywhere.example', 'PUT')
    assert.equal(pre.status, 204)
    assert.equal(pre.headers.get('access-control-allow-origin'), '*')
    assert.equal((await openStream(base, 'https://anywhere.example')).status, 101, 'and open streams')
  })
})

describe('CORS by default (no origin listed)', () => {
  let app: FastifyInstance
  let base: string
  before(async () => ({ app, base } = await listen([])))
  after(() => app.close())

  test('no CORS header is sent; a preflight is a plain OPTIONS: 204 with Allow and nothing for CORS', async () => {
    const res = await fetch(`${base}/health`, { headers: { origin: CHAT } })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('access-control-allow-origin'), null)
    const pre = await preflight(base, '/groups', CHAT)
    assert.equal(pre.status, 204)
    assert.equal(pre.headers.get('allow'), 'POST, OPTIONS')
    assert.equal(pre.headers.get('access-control-allow-origin'), null)
    assert.equal(pre.headers.get('access-control-allow-methods'), null)
    assert.equal((await fetch(`${base}/nothing`, { method: 'OPTIONS' })).status, 404)
  })

  test('streams open only for clients without an Origin and pages of the service itself', async () => {
    assert.equal((await openStream(base)).status, 101)
    assert.equal((await openStream(base, base)).status, 101)
    assert.equal((await openStream(base, CHAT)).status, 403)
  })
})
