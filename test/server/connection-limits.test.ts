import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { addressKey, ConnectionGate, MAX_REFUSED_WAITING, type ConnectionLimits } from '../../src/connection-gate.js'
import { DESCRIPTOR_HEADROOM, fileLimitWarning, openFileLimit } from '../../src/open-file-limit.js'
import type { RunningService } from '../../src/runtime.js'
import { exchangeOn, rawRequest, type RawResponse } from '../helpers/raw-http.js'
import { startTestService, useTestService } from '../helpers/service.js'
import { makeCertificate, useCertificateFiles, type TestCertificate } from '../helpers/tls.js'
import { LineReader } from '../tcp/helpers.js'
import { until } from '../helpers/until.js'

/** A plain connection from `from` (another loopback address stands for another client). */
async function open(port: number, from = '127.0.0.1'): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: from })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** One request on a connection of its own, read until the server ends the connection. */
async function http(port: number, request: string, from = '127.0.0.1'): Promise<RawResponse> {
  const [response, ...more] = await exchangeOn(await open(port, from), request)
  assert.equal(more.length, 0)
  return response!
}

/** What the TCP door says on a new connection before anything is sent: the one line of a refused one (then it ends), or nothing within 300 ms. */
async function tcpGreeting(socket: net.Socket | tls.TLSSocket): Promise<any> {
  const reader = new LineReader(socket)
  const line = await Promise.race([reader.next(), new Promise((resolve) => setTimeout(resolve, 300, undefined))])
  return line
}

const createGroup = (group: string) => rawRequest('POST', '/groups', { 'Content-Type': 'application/json', Connection: 'close' }, JSON.stringify({ group_id: group, creator_id: 'alice' }))

async function metricValue(port: number, series: string): Promise<number> {
  const response = await http(port, rawRequest('GET', '/metrics', { Connection: 'close' }))
  const line = response.body.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

/** A refused answer of the REST door: its status, code and the Retry-After in both places. */
function assertRefused(response: RawResponse, status: 503 | 429, message: RegExp): number {
  assert.equal(response.status, status, response.body)
  const body = JSON.parse(response.body)
  assert.equal(body.error, status === 503 ? 'unavailable' : 'rate_limited')
  assert.match(body.message, message)
  assert.equal(response.headers['retry-after'], String(body.retry_after))
  assert.equal(response.headers.connection, 'close')
  return body.retry_after
}

describe('MAX_CONNECTIONS: connections open at once on an instance, both doors together', () => {
  const suite = useTestService({ maxConnections: 3, mlsValidation: 'permissive', tcpMlsValidation: 'permissive', corsOrigins: ['https://chat.example.com'] })

  test('beyond it REST answers 503 and TCP an Error line, nothing is done, probes are answered; a closed connection makes room', async () => {
    const { running } = suite
    const held = [await open(running.tcpPort!), await open(running.tcpPort!), await open(running.httpPort)]
    await until(() => running.connections.open === 3, 'three connections counted')

    const refused = await http(running.httpPort, createGroup('full'))
    assert.equal(assertRefused(refused, 503, /^this instance has 3 connections open \(MAX_CONNECTIONS\); retry in 5 s$/), 5)

    const overTcp = await tcpGreeting(await open(running.tcpPort!))
    assert.deepEqual(overTcp, { type: 'Error', message: 'Connection refused: this instance has 3 connections open (MAX_CONNECTIONS); retry in 5 s', code: 'unavailable', retry_after: 5 })

    // A stream's handshake gets the same answer, not a WebSocket.
    const ws = new WebSocket(`ws://127.0.0.1:${running.httpPort}/clients/bob/stream`)
    ws.on('error', () => {})
    const status = await new Promise((resolve) => {
      ws.once('unexpected-response', (handshake, response) => {
        handshake.destroy()
        resolve(response.statusCode)
      })
      ws.once('open', () => {
        ws.terminate()
        resolve('a WebSocket opened')
      })
    })
    assert.equal(status, 503)

    // Probes and scrapes are answered, and their connections closed.
    const health = await http(running.httpPort, rawRequest('GET', '/health'))
    assert.equal(health.status, 200)
    assert.equal(health.headers.connection, 'close')
    const ready = await http(running.httpPort, rawRequest('GET', '/ready?x=1'))
    assert.equal(ready.status, 200)

    held[0]!.destroy()
    await until(() => running.connections.open === 2, 'the closed connection uncounted')
    assert.equal((await http(running.httpPort, rawRequest('GET', '/groups/full', { Connection: 'close' }))).status, 404, 'the refused POST created nothing')
    assert.equal((await http(running.httpPort, createGroup('room'))).status, 201)
    assert.equal(await metricValue(running.httpPort, 'mlsds_connections_refused_total{door="rest",reason="max_connections"}'), 4)
    assert.equal(await metricValue(running.httpPort, 'mlsds_connections_refused_total{door="tcp",reason="max_connections"}'), 1)
    assert.equal(await metricValue(running.httpPort, 'mlsds_requests_rejected_total{door="rest",error="unavailable"}'), 2)
    assert.equal(await metricValue(running.httpPort, 'mlsds_connections_open{door="tcp"}'), 1)
    // The scrape's own connection, and the one held.
    assert.equal(await metricValue(running.httpPort, 'mlsds_connections_open{door="rest"}'), 2)
    for (const socket of held) socket.destroy()
    await until(() => running.connections.open === 0, 'every connection uncounted')
  })

  test('a refused request with Expect: 100-continue gets the refusal, without a 100 Continue', async () => {
    const { running } = suite
    const held = await Promise.all([open(running.tcpPort!), open(running.tcpPort!), open(running.tcpPort!)])
    await until(() => running.connections.open === 3, 'three connections counted')
    const socket = await open(running.httpPort)
    const body = JSON.stringify({ group_id: 'expecting', creator_id: 'alice' })
    const text = rawRequest('POST', '/groups', { 'Content-Type': 'application/json', 'Content-Length': String(body.length), Expect: '100-continue' })
    const [response, ...more] = await exchangeOn(socket, text)
    assertRefused(response!, 503, /MAX_CONNECTIONS/)
    assert.equal(more.length, 0)
    // A page of an allowed origin may read the refusal; another origin's may not.
    const fromPage = await http(running.httpPort, rawRequest('GET', '/groups/g', { Origin: 'https://chat.example.com' }))
    assertRefused(fromPage, 503, /MAX_CONNECTIONS/)
    assert.equal(fromPage.headers['access-control-allow-origin'], 'https://chat.example.com')
    assert.equal(fromPage.headers['access-control-expose-headers'], 'retry-after')
    const foreign = await http(running.httpPort, rawRequest('GET', '/groups/g', { Origin: 'https://evil.example' }))
    assertRefused(foreign, 503, /MAX_CONNECTIONS/)
    assert.equal(foreign.headers['access-control-allow-origin'], undefined)
    // Another expectation: the refusal too, not a 417.
    const [other] = await exchangeOn(await open(running.httpPort), rawRequest('POST', '/groups', { 'Content-Type': 'application/json', Expect: 'something' }, body))
    assertRefused(other!, 503, /MAX_CONNECTIONS/)
    for (const s of held) s.destroy()
  })
})

describe('MAX_CONNECTIONS_PER_IP: connections open at once from one address', () => {
  const suite = useTestService({ maxConnectionsPerIp: 2, tcpMlsValidation: 'permissive' })

  test('a third from one address is refused with 429 on both doors; another address is not held back', async () => {
    const { running } = suite
    const held = [await open(running.httpPort), await open(running.tcpPort!)]
    await until(() => running.connections.open === 2, 'two connections counted')

    const retry = assertRefused(await http(running.httpPort, createGroup('third')), 429, /^127\.0\.0\.1 has 2 connections open \(MAX_CONNECTIONS_PER_IP\); close one, or retry in 5 s$/)
    assert.equal(retry, 5)
    const overTcp = await tcpGreeting(await open(running.tcpPort!))
    assert.equal(overTcp.code, 'rate_limited')
    assert.match(overTcp.message, /^Connection refused: 127\.0\.0\.1 has 2 connections open/)

    assert.equal((await http(running.httpPort, createGroup('other'), '127.0.0.2')).status, 201)
    assert.equal(await tcpGreeting(await open(running.tcpPort!, '127.0.0.3')), undefined, 'another address is admitted on the TCP door: nothing said')

    held[1]!.destroy()
    await until(() => running.connections.open <= 2, 'the closed connection uncounted')
    assert.equal((await http(running.httpPort, createGroup('third'))).status, 201)
    held[0]!.destroy()
  })
})

describe('CONNECTION_RATE_LIMIT: new connections from one address per window', () => {
  const suite = useTestService({ connectionRateLimit: { count: 2, windowSeconds: 60 }, tcpMlsValidation: 'permissive' })

  test('both doors count together; beyond the count 429 with when to come back, closed ones still counted; other addresses have their own', async () => {
    const { running } = suite
    assert.equal((await http(running.httpPort, createGroup('first'), '127.0.0.4')).status, 201)
    const tcp = await open(running.tcpPort!, '127.0.0.4')
    assert.equal(await tcpGreeting(tcp), undefined)
    tcp.destroy()

    const refused = await http(running.httpPort, createGroup('third'), '127.0.0.4')
    const retry = assertRefused(refused, 429, /^127\.0\.0\.4 opened 2 connections within 60 s \(CONNECTION_RATE_LIMIT\); retry in \d+ s$/)
    assert.ok(retry >= 1 && retry <= 60, String(retry))
    const overTcp = await tcpGreeting(await open(running.tcpPort!, '127.0.0.4'))
    assert.equal(overTcp.code, 'rate_limited')
    assert.ok(overTcp.retry_after >= 1 && overTcp.retry_after <= 60)

    assert.equal((await http(running.httpPort, createGroup('elsewhere'), '127.0.0.5')).status, 201)
    assert.equal(await metricValue(running.httpPort, 'mlsds_connections_refused_total{door="rest",reason="connection_rate"}'), 1)
    assert.equal(await metricValue(running.httpPort, 'mlsds_connections_refused_total{door="tcp",reason="connection_rate"}'), 1)
  })
})

describe('connection limits over TLS', () => {
  const files = useCertificateFiles()
  let certificate: TestCertificate
  let running: RunningService
  before(async () => {
    certificate = await makeCertificate()
    const { certFile, keyFile } = await files.write(certificate)
    running = await startTestService({ tlsCertFile: certFile, tlsKeyFile: keyFile, maxConnections: 1, tcpMlsValidation: 'permissive' })
  })
  after(() => running.close())

  const httpsGet = (path: string) => new Promise<{ status: number; body: any; retryAfter?: string }>((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port: running.httpPort, path, ca: certificate.cert, agent: false }, (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, body: JSON.parse(text), retryAfter: response.headers['retry-after'] }))
    })
    request.on('error', reject)
    request.end()
  })

  test('a connection still in its TLS handshake counts; refused ones are answered inside TLS; TLS connections are uncounted when they close', async () => {
    // Never starts its handshake, yet holds a descriptor: counted.
    const idle = await open(running.httpPort)
    await until(() => running.connections.open === 1, 'the connection in its handshake counted')

    const refused = await httpsGet('/groups/any')
    assert.equal(refused.status, 503)
    assert.equal(refused.body.error, 'unavailable')
    assert.equal(refused.retryAfter, '5')

    const secure = tls.connect({ host: '127.0.0.1', port: running.tcpPort!, ca: certificate.cert })
    await once(secure, 'secureConnect')
    const line = await tcpGreeting(secure)
    assert.equal(line.code, 'unavailable')
    assert.match(line.message, /MAX_CONNECTIONS/)

    idle.destroy()
    await until(() => running.connections.open === 0, 'the idle connection uncounted')
    assert.equal((await httpsGet('/health')).status, 200)
    const admitted = tls.connect({ host: '127.0.0.1', port: running.tcpPort!, ca: certificate.cert })
    await once(admitted, 'secureConnect')
    assert.equal(await tcpGreeting(admitted), undefined)
    admitted.end()
    await until(() => running.connections.open === 0, 'the TLS connections uncounted once closed')
  })

  test('a client that goes away during its TLS handshake is uncounted then, not at the handshake timeout (30 s)', async () => {
    for (const port of [running.tcpPort!, running.httpPort]) {
      // Without the certificate's CA: the client refuses the certificate and closes.
      const doubting = tls.connect({ host: '127.0.0.1', port })
      const [err] = await once(doubting, 'error')
      assert.match(String(err), /self.signed|unable to verify/i)
      await until(() => running.connections.open === 0, `the refused handshake on port ${port} uncounted`)
    }
  })
})

describe('ConnectionGate', () => {
  /** A bare listener watched by a gate, with the clock of the test. */
  async function gated(limits: Partial<ConnectionLimits>, options: { refusedGraceMs?: number; maxRefusedWaiting?: number; maxRateWindows?: number } = {}) {
    let now = 1_000_000
    const warnings: string[] = []
    /** Every decision of the gate, in order: admitted, or the reason of a refusal. */
    const decisions: string[] = []
    const gate = new ConnectionGate({
      limits: { maxConnections: 0, maxConnectionsPerIp: 0, connectionRateLimit: null, ...limits },
      now: () => now,
      metrics: { connectionOpened: () => decisions.push('admitted'), connectionClosed: () => {}, connectionRefused: (_door, reason) => decisions.push(reason) },
      log: { warn: ((_: unknown, message: string) => warnings.push(message)) as never },
      ...options,
    })
    const server = net.createServer(() => {})
    gate.watch(server, 'tcp')
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as net.AddressInfo).port
    return {
      gate,
      port,
      warnings,
      decisions,
      advance: (ms: number) => (now += ms),
      /** Connects and waits until the gate has decided about it. */
      async connect(from?: string): Promise<net.Socket> {
        const before = decisions.length
        const socket = await open(port, from)
        await until(() => decisions.length > before, 'the gate deciding about the connection')
        return socket
      },
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    }
  }

  test('a window of CONNECTION_RATE_LIMIT ends on time, and a new one starts', async () => {
    const t = await gated({ connectionRateLimit: { count: 1, windowSeconds: 10 } })
    const sockets = [await t.connect()]
    t.advance(4000)
    sockets.push(await t.connect())
    t.advance(5999)
    sockets.push(await t.connect())
    t.advance(1)
    sockets.push(await t.connect())
    assert.deepEqual(t.decisions, ['admitted', 'connection_rate', 'connection_rate', 'admitted'])
    assert.equal(t.gate.open, 2)
    for (const s of sockets) s.destroy()
    await t.close()
  })

  test('CONNECTION_RATE_LIMIT keeps at most so many windows: beyond, the oldest is forgotten', async () => {
    const t = await gated({ connectionRateLimit: { count: 1, windowSeconds: 60 } }, { maxRateWindows: 2 })
    const sockets: net.Socket[] = []
    for (const from of ['127.0.0.11', '127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.11', '127.0.0.13']) {
      sockets.push(await t.connect(from))
      t.advance(1000)
    }
    // .11's window is forgotten when .13's starts, so .11 starts a new one; .13 is still in its own.
    assert.deepEqual(t.decisions, ['admitted', 'connection_rate', 'admitted', 'admitted', 'admitted', 'connection_rate'])
    for (const socket of sockets) socket.destroy()
    await t.close()
  })

  test('refusals are logged at most once a minute per reason, with how many went unlogged', async () => {
    const t = await gated({ maxConnections: 1 })
    const first = await t.connect()
    const refused = [await t.connect(), await t.connect(), await t.connect()]
    assert.equal(t.warnings.length, 1)
    assert.equal(t.warnings[0], 'Connection refused: this instance has 1 connections open (MAX_CONNECTIONS); retry in 5 s')
    t.advance(60_000)
    refused.push(await t.connect())
    assert.equal(t.warnings.length, 2, 'the next warning a minute later')
    assert.match(t.warnings[1]!, /\(and 2 more refused for this reason since the last such line\)$/)
    for (const s of [first, ...refused]) s.destroy()
    await t.close()
  })

  test('a refused connection its door never answers is closed after the grace; beyond MAX_REFUSED_WAITING at once', async () => {
    const t = await gated({ maxConnections: 1 }, { refusedGraceMs: 200, maxRefusedWaiting: 1 })
    const first = await t.connect()
    const waiting = await t.connect()
    const closedAtGrace = once(waiting, 'close')
    const overflow = await open(t.port)
    await once(overflow, 'close')
    assert.equal(waiting.destroyed, false, 'the one waiting is still open while the overflow is closed at once')
    await closedAtGrace
    first.destroy()
    await t.close()
  })
})

describe('ConnectionGate on a TLS server: refusals move to the TLS socket by the connection\'s ends', () => {
  /** A raw socket as the gate sees it, with ends of its own; destroying it emits 'close'. */
  class RawSocket extends EventEmitter {
    readonly remoteAddress = '127.0.0.1'
    readonly localAddress = '127.0.0.1'
    readonly localPort = 443
    destroyed = false
    constructor(readonly remotePort: number) {
      super()
    }

    destroy(): void {
      this.destroyed = true
      this.emit('close')
    }
  }
  const rawSocket = (remotePort: number) => new RawSocket(remotePort)
  /** A TLS server whose connections only the gate sees (no handshake is started on these sockets). */
  function gatedTlsServer(maxConnections: number) {
    const gate = new ConnectionGate({ limits: { maxConnections, maxConnectionsPerIp: 0, connectionRateLimit: null }, refusedGraceMs: 60_000 })
    const server = new tls.Server({})
    server.removeAllListeners('connection')
    gate.watch(server, 'rest')
    const accept = (socket: RawSocket) => server.emit('connection', socket)
    const secure = (remotePort: number) => {
      const socket = rawSocket(remotePort)
      server.emit('secureConnection', socket)
      return gate.refusalOf(socket)
    }
    return { gate, accept, secure }
  }

  test('a connection reset and made again from the same port while refused is refused, even when the first one\'s close comes late', () => {
    const t = gatedTlsServer(1)
    t.accept(rawSocket(1000))
    const first = rawSocket(5000)
    t.accept(first)
    const again = rawSocket(5000)
    t.accept(again)
    first.destroy()
    assert.equal(t.secure(5000)?.reason, 'max_connections', 'the second connection from port 5000 keeps its refusal')
    assert.equal(t.gate.open, 1)
    again.destroy()
  })

  test('a connection admitted from the same port as a refused one whose close comes late is not refused', () => {
    const t = gatedTlsServer(1)
    const holder = rawSocket(1000)
    t.accept(holder)
    const refused = rawSocket(5000)
    t.accept(refused)
    holder.destroy()
    const admitted = rawSocket(5000)
    t.accept(admitted)
    // Its handshake done before the refused one's close is seen.
    assert.equal(t.secure(5000), undefined)
    refused.destroy()
    assert.equal(t.gate.open, 1)
  })
})

test('addressKey: IPv4 as it is, IPv4-mapped IPv6 as IPv4, IPv6 by its /64', () => {
  assert.equal(addressKey('203.0.113.7'), '203.0.113.7')
  assert.equal(addressKey('::ffff:203.0.113.7'), '203.0.113.7')
  assert.equal(addressKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64')
  assert.equal(addressKey('2001:0DB8:0001:0002:aaaa::1'), '2001:db8:1:2::/64')
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64')
  assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
  assert.equal(addressKey('::1'), '0:0:0:0::/64')
  assert.equal(addressKey('64:ff9b::192.0.2.33'), '64:ff9b:0:0::/64')
  assert.equal(addressKey('2001:db8:1:2::192.0.2.33'), '2001:db8:1:2::/64')
  assert.equal(addressKey(undefined), undefined)
  assert.equal(addressKey(''), undefined)
})

test('MAX_CONNECTIONS above the open-file limit is warned about at start, with what to change', () => {
  const limits = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax processes             95000                95000                processes\nMax open files            ${soft}                 524288               files\n`
  assert.equal(openFileLimit(() => limits('1024')), 1024)
  assert.equal(openFileLimit(() => limits('unlimited')), undefined)
  assert.equal(openFileLimit(() => 'no such line'), undefined)
  assert.equal(openFileLimit(() => {
    throw new Error('ENOENT: not Linux')
  }), undefined)
  assert.equal(typeof openFileLimit(), process.platform === 'linux' ? 'number' : 'undefined', 'this process\'s own limit')

  assert.equal(fileLimitWarning(10000, undefined), undefined)
  assert.equal(fileLimitWarning(0, 1024), undefined, 'no limit set: nothing to reach')
  assert.equal(fileLimitWarning(10000, 10000 + MAX_REFUSED_WAITING + DESCRIPTOR_HEADROOM), undefined)
  assert.equal(fileLimitWarning(10000, 10000 + MAX_REFUSED_WAITING + DESCRIPTOR_HEADROOM - 1), 'MAX_CONNECTIONS=10000 needs ulimit -n of at least 11088 (up to 1024 more for refused connections waiting for their answer, ~64 for the store and the listeners), and it is 11087: ' +
    'beyond it connections are closed unanswered; raise ulimit -n (LimitNOFILE= in systemd, --ulimit nofile= in Docker) or lower MAX_CONNECTIONS')
})

test('the start warns when MAX_CONNECTIONS is above the open-file limit', async () => {
  const limit = openFileLimit()
  if (limit === undefined) return
  const warnings: string[] = []
  const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) })
  const running = await startTestService({ maxConnections: limit }, logger)
  await running.close()
  assert.ok(warnings.some((w) => w.startsWith(`MAX_CONNECTIONS=${limit} needs ulimit -n of at least ${limit + MAX_REFUSED_WAITING + DESCRIPTOR_HEADROOM} `)), warnings.join('\n'))
})
