import assert from 'node:assert/strict'
import net from 'node:net'
import { describe, test } from 'node:test'
import { WebSocket } from 'ws'
import { exchange, parseResponses, rawRequest as request, WEBSOCKET_HANDSHAKE as handshake } from '../helpers/raw-http.js'
import { useTestService } from '../helpers/service.js'

/** HTTP/1.1 on real sockets: Upgrade headers the service does not act on are ignored (RFC 9110 §7.8). */
describe('requests with an Upgrade header', () => {
  const service = useTestService({ mlsValidation: 'permissive' })
  const port = () => service.running.httpPort

  test('are answered as plain HTTP, keep the connection usable, and the server lets go of the socket', async () => {
    const sockets = await Promise.all(Array.from({ length: 20 }, async () => {
      const [health, next] = await exchange(port(),
        request('GET', '/health', { Connection: 'Upgrade', Upgrade: 'foo' }),
        request('GET', '/ready', { Connection: 'close' }))
      assert.equal(health?.status, 200)
      assert.equal(JSON.parse(health!.body).status, 'ok')
      assert.equal(next?.status, 200, 'a later request on the same connection is answered')
    }))
    assert.equal(sockets.length, 20)
    // Every connection was closed by its client: none may be left open on the server.
    const deadline = Date.now() + 5000
    let open = -1
    while (Date.now() < deadline && open !== 0) {
      open = await new Promise<number>((resolve, reject) => service.running.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))))
      if (open !== 0) await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal(open, 0, 'sockets of answered upgrade requests are still open')
  })

  test('a body after the head is read: POST with `Upgrade: h2c` (curl --http2) creates the group', async () => {
    const body = JSON.stringify({ group_id: 'h2c-group', creator_id: 'alice' })
    const [created] = await exchange(port(), request('POST', '/groups', {
      Connection: 'Upgrade, HTTP2-Settings, close', Upgrade: 'h2c', 'HTTP2-Settings': 'AAMAAABkAAQCAAAAAAIAAAAA', 'Content-Type': 'application/json',
    }, body))
    assert.equal(created?.status, 201, created?.body)
    assert.equal((await service.api.call('GET', '/groups/h2c-group')).status, 200)
  })

  test('pipelined requests with Upgrade headers are answered in order, after the one before them', async () => {
    const responses = await exchange(port(),
      request('POST', '/groups', { 'Content-Type': 'application/json' }, JSON.stringify({ group_id: 'piped', creator_id: 'alice' }))
      + request('GET', '/groups/piped', { Connection: 'Upgrade', Upgrade: 'foo' })
      + request('DELETE', '/groups/piped', { Connection: 'Upgrade', Upgrade: 'h2c' })
      + request('GET', '/groups/piped', { Connection: 'close' }))
    assert.deepEqual(responses.map((r) => r.status), [201, 200, 204, 404])
  })

  test('pipelined requests are carried out one after another, as sent: a DELETE behind a create deletes what it created', async () => {
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ group_id: `order-${i}`, creator_id: 'alice' })
      const responses = await exchange(port(),
        request('POST', '/groups', { 'Content-Type': 'application/json' }, body)
        + request('POST', `/groups/order-${i}/messages`, { 'Content-Type': 'application/json' }, JSON.stringify({ sender_id: 'alice', message: 'aGk=', message_type: 'Application' }))
        + request('DELETE', `/groups/order-${i}`)
        + request('GET', `/groups/order-${i}`, { Connection: 'close' }))
      assert.deepEqual(responses.map((r) => r.status), [201, 201, 204, 404], responses.map((r) => r.body).join('\n'))
    }
  })

  test('a WebSocket handshake to a route that is not a stream gets that route\'s answer, not a WebSocket', async () => {
    const [pulled] = await exchange(port(), request('GET', '/clients/carol/messages', { ...handshake, Connection: 'Upgrade, close' }))
    assert.equal(pulled?.status, 200)
    assert.equal(JSON.parse(pulled!.body).client_id, 'carol')
  })

  test('the stream route without a WebSocket handshake is a 426 that names the upgrade', async () => {
    for (const headers of [{ Connection: 'close' }, { Connection: 'Upgrade, close', Upgrade: 'h2c' }] as Record<string, string>[]) {
      const [answer] = await exchange(port(), request('GET', '/clients/carol/stream', headers))
      assert.equal(answer?.status, 426)
      assert.equal(answer?.headers.upgrade, 'websocket')
      assert.equal(JSON.parse(answer!.body).error, 'upgrade_required')
    }
  })

  test('a broken WebSocket handshake to the stream is a 400 in the error shape, not the library\'s HTML page', async () => {
    for (const headers of [{ ...handshake, 'Sec-WebSocket-Key': 'short' }, { ...handshake, 'Sec-WebSocket-Version': '7' }, { ...handshake, Upgrade: 'websocket, h2c' }]) {
      const [answer] = await exchange(port(), request('GET', '/clients/carol/stream', { ...headers, Connection: 'Upgrade, close' }))
      assert.equal(answer?.status, 400, JSON.stringify(headers))
      assert.match(answer!.headers['content-type'] ?? '', /^application\/json/)
      assert.equal(JSON.parse(answer!.body).error, 'bad_request')
    }
  })

  test('a stream handshake the stream would refuse is a 400 before the upgrade', async () => {
    const base = `ws://127.0.0.1:${port()}`
    for (const path of ['/clients/dave/stream?after=1e20', '/clients/dave/stream?after=1e309', '/clients/%00/stream']) {
      const ws = new WebSocket(`${base}${path}`)
      const outcome = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        ws.once('open', () => reject(new Error(`${path} opened`)))
        ws.once('unexpected-response', (_req, res) => {
          let text = ''
          res.on('data', (chunk: Buffer) => (text += chunk.toString()))
          res.on('end', () => resolve({ status: res.statusCode!, body: text }))
        })
        ws.once('error', reject)
      })
      assert.equal(outcome.status, 400, path)
      assert.match(JSON.parse(outcome.body).error, /^(bad_request|invalid_id)$/, path)
    }
    // And a good one still opens.
    const ws = new WebSocket(`${base}/clients/dave/stream?after=0`)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    ws.close()
  })
})

describe('malformed, slow and unexpected requests on the wire', () => {
  const service = useTestService({ mlsValidation: 'permissive', httpRequestTimeoutSeconds: 1 })
  const port = () => service.running.httpPort

  test('a request whose body stops arriving is answered 408 within HTTP_REQUEST_TIMEOUT and its connection closed; a stream is not a request', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port()}/clients/erin/stream`)
    await new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    })
    let streamClosed = false
    ws.once('close', () => (streamClosed = true))
    const [timedOut] = await exchange(port(), request('POST', '/groups', { 'Content-Type': 'application/json', 'Content-Length': '100' }).replace(/\r\n\r\n$/, '\r\n\r\n{"group_id":'))
    assert.equal(timedOut?.status, 408)
    assert.deepEqual(Object.keys(JSON.parse(timedOut!.body)), ['error', 'message'])
    assert.equal(JSON.parse(timedOut!.body).error, 'request_timeout')
    await new Promise((r) => setTimeout(r, 1500))
    assert.equal(streamClosed, false, 'the stream outlived the request timeout')
    ws.close()
  })

  test('malformed HTTP is a 400 in the error shape, after the answer to the good request before it', async () => {
    const responses = await exchange(port(), `${request('GET', '/health')}GARBAGE / HTTP/1.1\r\n\r\n`)
    assert.deepEqual(responses.map((r) => r.status), [200, 400])
    const refused = JSON.parse(responses[1]!.body)
    assert.equal(refused.error, 'bad_request')
    assert.match(refused.message, /^malformed HTTP request: /)
    for (const bad of ['get /health HTTP/1.1\r\nHost: x\r\n\r\n', 'POST /groups HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello']) {
      const [answer] = await exchange(port(), bad)
      assert.equal(answer?.status, 400, bad)
      assert.equal(JSON.parse(answer!.body).error, 'bad_request', bad)
    }
  })

  test('headers larger than the server reads are a 431 in the error shape', async () => {
    const [answer] = await exchange(port(), request('GET', '/health', { 'X-Big': 'x'.repeat(20_000) }))
    assert.equal(answer?.status, 431)
    assert.equal(JSON.parse(answer!.body).error, 'headers_too_large')
  })

  test('a known path asked with a method it does not take is a 405 with Allow; HEAD of a claim takes nothing', async () => {
    const wrong = await service.api.call('PATCH', '/groups/anything')
    assert.equal(wrong.status, 405)
    assert.equal(wrong.body.error, 'method_not_allowed')
    assert.equal(wrong.headers.get('allow'), 'DELETE, GET, HEAD')
    assert.equal((await service.api.call('GET', '/no/such/route')).status, 404)

    assert.equal((await service.api.putKeyPackages('hal', [Buffer.from('legacy bytes')])).status, 200)
    const head = await fetch(`${service.api.base}/key-packages/hal`, { method: 'HEAD' })
    assert.equal(head.status, 405)
    assert.equal(head.headers.get('allow'), 'DELETE, GET, PUT')
    assert.equal((await service.api.count('hal')).total, 1, 'HEAD claimed nothing')
  })
})

/** RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400, in the error shape, and nothing it asked for is done. */
describe('requests without a Host header', () => {
  const service = useTestService({ mlsValidation: 'permissive' })
  const port = () => service.running.httpPort
  const withoutHost = (text: string) => text.replace('Host: 127.0.0.1\r\n', '')

  test('HTTP/1.1 without Host is a 400 bad_request that names the header, and the connection is closed', async () => {
    const [answer, ...rest] = await exchange(port(), withoutHost(request('GET', '/health')))
    assert.equal(answer?.status, 400)
    assert.match(answer!.headers['content-type'] ?? '', /^application\/json/)
    assert.equal(answer!.headers.connection, 'close')
    const body = JSON.parse(answer!.body)
    assert.deepEqual(Object.keys(body), ['error', 'message'])
    assert.equal(body.error, 'bad_request')
    assert.match(body.message, /Host header/)
    assert.equal(rest.length, 0)
    const metrics = await (await fetch(`${service.api.base}/metrics`)).text()
    assert.match(metrics, /mlsds_requests_rejected_total\{door="rest",error="bad_request"\} [1-9]/)
  })

  test('a write without Host changes nothing, and pipelined requests after it are not served', async () => {
    const body = JSON.stringify({ group_id: 'hostless', creator_id: 'alice' })
    const responses = await exchange(port(),
      request('POST', '/groups', { 'Content-Type': 'application/json' }, JSON.stringify({ group_id: 'hosted', creator_id: 'alice' }))
      + withoutHost(request('POST', '/groups', { 'Content-Type': 'application/json' }, body))
      + request('DELETE', '/groups/hosted'))
    assert.deepEqual(responses.map((r) => r.status), [201, 400])
    assert.equal((await service.api.call('GET', '/groups/hostless')).status, 404, 'the Host-less create was carried out')
    assert.equal((await service.api.call('GET', '/groups/hosted')).status, 200, 'a request after the Host-less one was carried out')
  })

  test('an `Expect` without Host is the same 400 (no 100 Continue, no 417); with Host, Node\'s answers', async () => {
    for (const expect of ['100-continue', 'something-else']) {
      const responses = await exchange(port(), withoutHost(request('POST', '/groups', { 'Content-Type': 'application/json', Expect: expect }, JSON.stringify({ group_id: `expect-${expect}`, creator_id: 'alice' }))))
      assert.deepEqual(responses.map((r) => r.status), [400], expect)
      assert.equal(JSON.parse(responses[0]!.body).error, 'bad_request')
      assert.equal((await service.api.call('GET', `/groups/expect-${expect}`)).status, 404)
    }
    const continued = await exchange(port(), request('POST', '/groups', { 'Content-Type': 'application/json', Expect: '100-continue', Connection: 'close' }, JSON.stringify({ group_id: 'expect-ok', creator_id: 'alice' })))
    assert.deepEqual(continued.map((r) => r.status), [100, 201])
    const unknown = await exchange(port(), request('GET', '/health', { Expect: 'something-else', Connection: 'close' }))
    assert.deepEqual(unknown.map((r) => r.status), [417])
    assert.equal(JSON.parse(unknown[0]!.body).error, 'expectation_failed')
  })

  test('a WebSocket handshake to a stream without Host is the same 400, not an upgrade', async () => {
    const [answer] = await exchange(port(), withoutHost(request('GET', '/clients/carol/stream', handshake)))
    assert.equal(answer?.status, 400)
    assert.equal(JSON.parse(answer!.body).error, 'bad_request')
  })

  test('HTTP/1.0 needs no Host', async () => {
    const [answer] = await exchange(port(), 'GET /health HTTP/1.0\r\n\r\n')
    assert.equal(answer?.status, 200)
    assert.equal(JSON.parse(answer!.body).status, 'ok')
  })
})

describe('pipelined requests after the connection is to close', () => {
  const service = useTestService({ mlsValidation: 'permissive' })
  const port = () => service.running.httpPort

  test('are not carried out (RFC 9112 §9.6): the client asked to close, or the service closed after an error', async () => {
    for (const group of ['kept-asked', 'kept-broken']) assert.equal((await service.api.call('POST', '/groups', { group_id: group, creator_id: 'alice' })).status, 201)
    const asked = await exchange(port(), request('GET', '/health', { Connection: 'close' }) + request('DELETE', '/groups/kept-asked'))
    assert.deepEqual(asked.map((r) => r.status), [200])
    const broken = await exchange(port(), request('POST', '/groups', { 'Content-Type': 'application/json' }, '{"group_id":') + request('DELETE', '/groups/kept-broken'))
    assert.deepEqual(broken.map((r) => r.status), [400])
    assert.equal(broken[0]!.headers.connection, 'close')
    // Give a wrongly served DELETE the time to run.
    await new Promise((r) => setTimeout(r, 100))
    assert.equal((await service.api.call('GET', '/groups/kept-asked')).status, 200, 'a request after `Connection: close` was carried out')
    assert.equal((await service.api.call('GET', '/groups/kept-broken')).status, 200, 'a request after an error that closes the connection was carried out')
  })
})
