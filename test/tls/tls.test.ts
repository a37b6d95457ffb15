import assert from 'node:assert/strict'
import { once } from 'node:events'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import type { Logger } from 'pino'
import type { Config } from '../../src/config.js'
import type { RunningService } from '../../src/runtime.js'
import { logCertificate, readTlsCredentials, TlsError } from '../../src/tls.js'
import { startTestService } from '../helpers/service.js'
import { makeCertificate, useCertificateFiles, type TestCertificate } from '../helpers/tls.js'
import { LineReader, startServer } from '../tcp/helpers.js'
import { buildTestApp } from '../helpers/app.js'

interface HttpsAnswer {
  status: number
  body: any
  /** The fingerprint of the certificate the server presented. */
  fingerprint256: string
}

/** One request over HTTPS on a connection of its own, trusting only `ca`. */
function httpsCall(port: number, ca: string, method: string, path: string, body?: unknown): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const request = https.request({ host: '127.0.0.1', port, method, path, ca, agent: false, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (response) => {
      const fingerprint256 = (response.socket as tls.TLSSocket).getPeerCertificate().fingerprint256
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('end', () => resolve({ status: response.statusCode!, body: text ? JSON.parse(text) : undefined, fingerprint256 }))
    })
    request.on('error', reject)
    request.end(body === undefined ? undefined : JSON.stringify(body))
  })
}

/** A TLS connection to the TCP door, trusting only `ca`, with a reader of its answers. */
async function tlsConnect(port: number, ca: string): Promise<{ socket: tls.TLSSocket; reader: LineReader }> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca })
  await once(socket, 'secureConnect')
  return { socket, reader: new LineReader(socket) }
}

/** What a client that speaks no TLS gets from a TLS port: never an answer, and the connection ends. */
async function plainGetsNoAnswer(port: number, text: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  let received = ''
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
  socket.write(text)
  await Promise.race([once(socket, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('the TLS port kept a plain connection open')), 5000))])
  assert.doesNotMatch(received, /HTTP\/1\.1 \d{3}|"type"/, 'a plain client got an answer in clear')
}

/**
 * The service of one suite with TLS on a fresh self-signed certificate (`commonName`), started
 * before its tests and closed after them; `files` rewrites the certificate files it reads.
 */
function useTlsService(overrides: Partial<Config> = {}, options: { commonName?: string; logger?: Logger } = {}) {
  const files = useCertificateFiles()
  let certificate: TestCertificate | undefined
  let running: RunningService | undefined
  before(async () => {
    certificate = await makeCertificate(options.commonName)
    const { certFile, keyFile } = await files.write(certificate)
    running = await startTestService({ tlsCertFile: certFile, tlsKeyFile: keyFile, ...overrides }, options.logger)
  })
  after(() => running?.close())
  return {
    files,
    get certificate(): TestCertificate {
      return certificate ?? assert.fail('the suite\'s service starts before its tests')
    },
    get running(): RunningService {
      return running ?? assert.fail('the suite\'s service starts before its tests')
    },
  }
}

describe('TLS_CERT_FILE and TLS_KEY_FILE: HTTPS, wss:// and the TCP door over TLS', () => {
  const suite = useTlsService({ mlsValidation: 'permissive', tcpMlsValidation: 'permissive' })

  test('the REST API answers over HTTPS with the configured certificate; plain HTTP gets no answer in clear', async () => {
    const created = await httpsCall(suite.running.httpPort, suite.certificate.cert, 'POST', '/groups', { group_id: 'tls-group', creator_id: 'alice' })
    assert.equal(created.status, 201, JSON.stringify(created.body))
    assert.equal(created.fingerprint256, suite.certificate.fingerprint256)
    assert.equal((await httpsCall(suite.running.httpPort, suite.certificate.cert, 'GET', '/groups/tls-group')).body.members[0], 'alice')
    await plainGetsNoAnswer(suite.running.httpPort, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
    // And a client that does not trust the certificate refuses it.
    await assert.rejects(httpsCall(suite.running.httpPort, (await makeCertificate('someone else')).cert, 'GET', '/health'), /self[- ]signed|unable to verify|certificate/i)
  })

  test('malformed HTTP inside TLS gets the same JSON 400s as in clear', async () => {
    for (const bad of ['GARBAGE / HTTP/1.1\r\n\r\n', 'GET /health HTTP/1.1\r\n\r\n']) {
      const socket = tls.connect({ host: '127.0.0.1', port: suite.running.httpPort, ca: suite.certificate.cert })
      await once(socket, 'secureConnect')
      let text = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => (text += chunk))
      socket.write(bad)
      await once(socket, 'end')
      socket.destroy()
      assert.match(text, /^HTTP\/1\.1 400 /, bad)
      assert.equal(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)).error, 'bad_request', bad)
    }
  })

  test('Upgrade headers that are not a stream handshake are ignored over HTTPS too (the request is answered as plain HTTPS)', async () => {
    const exchangeTls = async (text: string) => {
      const socket = tls.connect({ host: '127.0.0.1', port: suite.running.httpPort, ca: suite.certificate.cert })
      await once(socket, 'secureConnect')
      let received = ''
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => (received += chunk))
      socket.write(text)
      await once(socket, 'end')
      socket.destroy()
      return received
    }
    const health = await exchangeTls('GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: foo\r\n\r\n')
    assert.match(health, /^HTTP\/1\.1 200 /)
    const body = JSON.stringify({ group_id: 'tls-h2c', creator_id: 'alice' })
    const created = await exchangeTls(`POST /groups HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
    assert.match(created, /^HTTP\/1\.1 201 /)
  })

  test('the TCP door speaks TLS: legacy requests over it see what HTTPS stored, and plain TCP gets no answer', async () => {
    const { socket, reader } = await tlsConnect(suite.running.tcpPort!, suite.certificate.cert)
    try {
      assert.equal(socket.getPeerCertificate().fingerprint256, suite.certificate.fingerprint256)
      socket.write(`${JSON.stringify({ type: 'JoinGroup', group_id: 'tls-group', client_id: 'bob' })}\n`)
      assert.deepEqual(await reader.next(), { type: 'GroupResponse', group_id: 'tls-group', members: ['alice', 'bob'] })
      socket.write(`${JSON.stringify({ type: 'RelayMessage', group_id: 'tls-group', sender_id: 'bob', message: [104, 105], message_type: 'Application' })}\n`)
      const relayed = await reader.next()
      assert.equal(relayed.success, true, JSON.stringify(relayed))
    } finally {
      socket.destroy()
    }
    const log = await httpsCall(suite.running.httpPort, suite.certificate.cert, 'GET', '/groups/tls-group/messages')
    assert.deepEqual(log.body.messages.map((m: { sender_id: string }) => m.sender_id), ['bob'])
    await plainGetsNoAnswer(suite.running.tcpPort!, `${JSON.stringify({ type: 'ListKeyPackages' })}\n`)
  })

  test('a stream over wss:// gets what is relayed to the group', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${suite.running.httpPort}/clients/alice/stream?after=0`, { ca: suite.certificate.cert })
    try {
      const first = new Promise<any>((resolve, reject) => {
        ws.once('message', (data) => resolve(JSON.parse(String(data))))
        ws.once('error', reject)
      })
      await once(ws, 'open')
      assert.equal((await httpsCall(suite.running.httpPort, suite.certificate.cert, 'POST', '/groups/tls-group/messages', { sender_id: 'bob', message: 'aGk=', message_type: 'Application' })).status, 201)
      const delivery = await first
      assert.equal(delivery.group_id, 'tls-group')
    } finally {
      ws.close()
    }
  })
})

describe('TCP_TLS=false: the REST API over HTTPS, the TCP door plain for the original clients', () => {
  const suite = useTlsService({ tcpTls: 'false', tcpMlsValidation: 'permissive' })

  test('both doors, one state', async () => {
    assert.equal((await httpsCall(suite.running.httpPort, suite.certificate.cert, 'POST', '/groups', { group_id: 'mixed', creator_id: 'alice' })).status, 201)
    const socket = net.connect(suite.running.tcpPort!, '127.0.0.1')
    await once(socket, 'connect')
    const reader = new LineReader(socket)
    try {
      socket.write(`${JSON.stringify({ type: 'JoinGroup', group_id: 'mixed', client_id: 'bob' })}\n`)
      assert.deepEqual(await reader.next(), { type: 'GroupResponse', group_id: 'mixed', members: ['alice', 'bob'] })
    } finally {
      socket.destroy()
    }
  })
})

describe('certificate reload (SIGHUP)', () => {
  const logged: Array<{ level: number; msg: string }> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) })
  const suite = useTlsService({}, { commonName: 'first.example', logger })

  test('new connections of both doors get the renewed certificate; an open one keeps working', async () => {
    const open = await tlsConnect(suite.running.tcpPort!, suite.certificate.cert)
    const renewed = await makeCertificate('renewed.example')
    await suite.files.write(renewed)
    assert.equal(await suite.running.reloadTls(), true)
    assert.equal((await httpsCall(suite.running.httpPort, renewed.cert, 'GET', '/health')).fingerprint256, renewed.fingerprint256)
    const fresh = await tlsConnect(suite.running.tcpPort!, renewed.cert)
    assert.equal(fresh.socket.getPeerCertificate().fingerprint256, renewed.fingerprint256)
    fresh.socket.destroy()
    open.socket.write(`${JSON.stringify({ type: 'ListKeyPackages' })}\n`)
    assert.equal((await open.reader.next()).type, 'KeyPackageListResponse')
    open.socket.destroy()
    assert.ok(logged.some((l) => l.msg === 'TLS certificate reloaded' && String((l as { subject?: string }).subject).includes('renewed.example')))
  })

  test('files that cannot be used are logged and the certificate served is kept', async () => {
    const current = await makeCertificate('current.example')
    await suite.files.write(current)
    assert.equal(await suite.running.reloadTls(), true)
    // A key that is not the certificate's, as when the files are half replaced.
    const other = await makeCertificate('other.example')
    await suite.files.write({ cert: other.cert, key: current.key })
    assert.equal(await suite.running.reloadTls(), false)
    assert.equal((await httpsCall(suite.running.httpPort, current.cert, 'GET', '/health')).fingerprint256, current.fingerprint256)
    assert.ok(logged.some((l) => l.level === 50 && /not reloaded.*not the private key/.test(l.msg)), JSON.stringify(logged.slice(-3)))
  })
})

describe('unusable TLS files', () => {
  const files = useCertificateFiles()

  test('end the start with a TlsError that names the setting, and never show the key', async () => {
    const good = await makeCertificate()
    const other = await makeCertificate()
    const { certFile, keyFile } = await files.write(good)
    const cases: Array<[string, string, RegExp]> = [
      [`${files.dir}/missing.pem`, keyFile, /cannot read TLS_CERT_FILE .*missing\.pem: no such file/],
      [certFile, `${files.dir}/missing.pem`, /cannot read TLS_KEY_FILE .*: no such file/],
      [keyFile, keyFile, /TLS_CERT_FILE .* holds no PEM certificate/],
      [certFile, certFile, /TLS_KEY_FILE .* holds no unencrypted PEM private key/],
    ]
    for (const [cert, key, expected] of cases) {
      await assert.rejects(startTestService({ tlsCertFile: cert, tlsKeyFile: key }), (err: Error) => err instanceof TlsError && expected.test(err.message) && !err.message.includes('PRIVATE KEY'), `${cert} / ${key}`)
    }
    const { writeFile } = await import('node:fs/promises')
    await writeFile(keyFile, other.key)
    await assert.rejects(readTlsCredentials(certFile, keyFile), /TLS_KEY_FILE .* is not the private key of the certificate in TLS_CERT_FILE/)
  })

  test('a chain OpenSSL cannot take (a broken certificate after the first) is a TlsError naming both files', async () => {
    const good = await makeCertificate()
    // A second certificate with a line of its body missing: well-formed PEM, truncated DER.
    const lines = (await makeCertificate('second')).cert.trim().split('\n')
    const broken = `${good.cert.trim()}\n${[...lines.slice(0, 2), ...lines.slice(3)].join('\n')}\n`
    const { certFile, keyFile } = await files.write({ cert: broken, key: good.key })
    await assert.rejects(readTlsCredentials(certFile, keyFile), (err: Error) => err instanceof TlsError && /TLS_CERT_FILE .* and TLS_KEY_FILE .* cannot serve TLS: /.test(err.message))
  })

  test('a certificate out of its validity is loaded with a warning', async () => {
    const expired = await makeCertificate('old.example', { notBeforeDate: new Date(Date.now() - 10 * 86_400_000), notAfterDate: new Date(Date.now() - 86_400_000) })
    const warned: string[] = []
    const { certFile, keyFile } = await files.write(expired)
    const loaded = await readTlsCredentials(certFile, keyFile)
    logCertificate({ info: () => assert.fail('an expired certificate logged at info'), warn: (_fields: object, message: string) => void warned.push(message) } as never, loaded.certificate, 'TLS certificate loaded')
    assert.match(warned[0] ?? '', /EXPIRED/)
  })
})

describe('TLS handshakes that never finish', () => {
  test('the TCP door drops the connection at the handshake timeout', async () => {
    const certificate = await makeCertificate()
    const server = await startServer({ tls: certificate, tlsHandshakeTimeoutMs: 300 })
    try {
      const socket = net.connect(server.port, '127.0.0.1')
      socket.on('error', () => {})
      await once(socket, 'connect')
      await Promise.race([once(socket, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('a connection that never started its handshake was kept')), 5000))])
    } finally {
      await server.close()
    }
  })

  test('HTTPS drops the connection at the handshake timeout without counting a rejected request', async () => {
    const certificate = await makeCertificate()
    const { app } = await buildTestApp({ metrics: true }, { tls: certificate, tlsHandshakeTimeoutMs: 300 })
    try {
      await app.listen({ host: '127.0.0.1', port: 0 })
      const port = (app.server.address() as net.AddressInfo).port
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => {})
      let received = ''
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')))
      await once(socket, 'connect')
      await Promise.race([once(socket, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('a connection that never started its handshake was kept')), 5000))])
      assert.equal(received, '', 'an answer in clear on a TLS port')
      const metrics = await app.inject({ method: 'GET', url: '/metrics' })
      assert.doesNotMatch(metrics.body, /mlsds_requests_rejected_total\{door="rest",error="bad_request"\} [1-9]/)
    } finally {
      await app.close()
    }
  })
})

describe('shutdown with connections that never sent a request', () => {
  const files = useCertificateFiles()
  test('a plain one and one in its TLS handshake are cut at SHUTDOWN_TIMEOUT_MS, so the stop ends', async () => {
    for (const secure of [false, true]) {
      const certificate = await makeCertificate()
      const tlsFiles = secure ? await files.write(certificate) : undefined
      const running = await startTestService({ shutdownTimeoutMs: 300, ...(tlsFiles ? { tlsCertFile: tlsFiles.certFile, tlsKeyFile: tlsFiles.keyFile } : {}) })
      const socket = net.connect(running.httpPort, '127.0.0.1')
      socket.on('error', () => {})
      await once(socket, 'connect')
      const closed = once(socket, 'close')
      await Promise.race([running.close(), new Promise((_, reject) => setTimeout(() => reject(new Error(`the stop waited for a silent connection (${secure ? 'https' : 'http'})`)), 10_000))])
      await closed
    }
  })
})
