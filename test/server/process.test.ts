import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { test } from 'node:test'

/** The real process, as `npm start` runs it (through tsx here, to skip the build). */
function startProcess(env: Record<string, string>, args: string[] = []): { child: ChildProcess; output: () => string; lines: () => Record<string, unknown>[] } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts', ...args], {
    env: { PATH: process.env.PATH ?? '', HTTP_PORT: '0', TCP_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()))
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
  return { child, output: () => out, lines }
}

async function waitFor<T>(check: () => T | undefined, what: string, ms = 20000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const portsFrom = (lines: Record<string, unknown>[]) => {
  const ports = lines
    .map((l) => /running on [^:]+:(\d+) \((HTTP|legacy TCP)/.exec(String(l.msg)))
    .filter((m): m is RegExpExecArray => m !== null)
  return ports.length === 2 ? Object.fromEntries(ports.map((m) => [m[2], Number(m[1])])) as Record<'HTTP' | 'legacy TCP', number> : undefined
}

test('starts both listeners on free ports, logs them, and stops with exit 0 on SIGTERM', async (t) => {
  const proc = startProcess({ LOG_LEVEL: 'info' })
  // A failed assertion must not leave the process running (the test would never end).
  t.after(() => proc.child.kill('SIGKILL'))
  const ports = await waitFor(() => portsFrom(proc.lines()), 'both listeners')
  assert.ok(ports.HTTP > 0 && ports['legacy TCP'] > 0)
  const res = await fetch(`http://127.0.0.1:${ports.HTTP}/health`)
  assert.deepEqual(await res.json(), { status: 'ok', store: 'memory' })
  // The start says what runs where, and nothing empty (Fastify's own listening line is not written).
  assert.deepEqual(proc.lines().map((l) => String(l.msg)).filter((m) => !m.includes('request')), [
    `MLS Delivery Service running on 127.0.0.1:${ports.HTTP} (HTTP REST API)`,
    `MLS Delivery Service running on 127.0.0.1:${ports['legacy TCP']} (legacy TCP-JSON)`,
  ])
  // The level of the request logs is back after the start.
  await waitFor(() => (proc.lines().some((l) => l.msg === 'request completed') ? true : undefined), 'the request log line')

  proc.child.kill('SIGTERM')
  const [code] = await once(proc.child, 'exit')
  assert.equal(code, 0)
})

test('SIGINT with an idle TCP client connected still exits 0 promptly', async () => {
  const proc = startProcess({})
  const ports = await waitFor(() => portsFrom(proc.lines()), 'both listeners')
  const { connect } = await import('node:net')
  const socket = connect(ports['legacy TCP'], '127.0.0.1')
  await once(socket, 'connect')
  socket.on('error', () => {})
  await waitFor(() => (proc.output().includes('New client connected from') ? true : undefined), 'the connection log line')
  proc.child.kill('SIGINT')
  const [code] = await once(proc.child, 'exit')
  assert.equal(code, 0)
  socket.destroy()
})

test('a port in use ends the start with one line naming the port and the variable', async () => {
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  const port = (blocker.address() as AddressInfo).port
  try {
    const proc = startProcess({ TCP_PORT: String(port), LOG_LEVEL: 'silent' })
    const [code] = await once(proc.child, 'exit')
    assert.equal(code, 1)
    const text = proc.output().trim()
    assert.match(text, new RegExp(`port ${port}.*already in use.*TCP_PORT`))
    assert.equal(text.split('\n').length, 1, `expected one line, got:\n${text}`)
    assert.doesNotMatch(text, /\s+at /)
  } finally {
    blocker.close()
  }
})

test('a bad setting ends the start with a clear error and exit 2', async () => {
  const proc = startProcess({ HTTP_PORT: 'abc' })
  const [code] = await once(proc.child, 'exit')
  assert.equal(code, 2)
  assert.match(proc.output(), /HTTP_PORT="abc": must be a whole number/)
})

test('AUTH=jwt from the environment: both doors ask for a token, and the secret is never printed', async () => {
  const secret = 'a process-test secret of 32+ characters'
  const refused = startProcess({ AUTH: 'jwt', AUTH_JWT_SECRET: 'short' })
  const [refusedCode] = await once(refused.child, 'exit')
  assert.equal(refusedCode, 2)
  assert.match(refused.output(), /AUTH_JWT_SECRET=\(hidden\): must be at least 32 characters/)
  assert.ok(!refused.output().includes('short'), 'the secret is not echoed')

  const proc = startProcess({ AUTH: 'jwt', AUTH_JWT_SECRET: secret, LOG_LEVEL: 'info' })
  const ports = await waitFor(() => portsFrom(proc.lines()), 'both listeners')
  assert.ok(proc.lines().some((l) => /\(HTTP REST API, bearer tokens required\)$/.test(String(l.msg))))
  const { hmacToken } = await import('../helpers/tokens.js')
  const token = await hmacToken('bob', { secret })
  const base = `http://127.0.0.1:${ports.HTTP}`
  assert.equal((await fetch(`${base}/health`)).status, 200)
  const anonymous = await fetch(`${base}/clients/bob/messages`)
  assert.equal(anonymous.status, 401)
  assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="mls-delivery-service"')
  assert.equal((await fetch(`${base}/clients/bob/messages`, { headers: { authorization: `Bearer ${token}` } })).status, 200)

  const { connect } = await import('node:net')
  const socket = connect(ports['legacy TCP'], '127.0.0.1')
  let answers = ''
  socket.on('data', (d: Buffer) => (answers += d.toString()))
  socket.write(`{"type":"ListKeyPackages"}\n{"type":"Authenticate","token":"${token}"}\n{"type":"ListKeyPackages"}\n`)
  const lines = await waitFor(() => (answers.split('\n').length > 3 ? answers.split('\n').slice(0, 3).map((l) => JSON.parse(l) as Record<string, unknown>) : undefined), 'three TCP answers')
  socket.destroy()
  assert.deepEqual(lines.map((l) => l.code ?? l.type), ['unauthenticated', 'Authenticated', 'KeyPackageListResponse'])
  assert.ok(!proc.output().includes(secret), 'the secret is not logged')
  proc.child.kill('SIGTERM')
  const [code] = await once(proc.child, 'exit')
  assert.equal(code, 0)
})

test('TLS from the environment: HTTPS and TLS on TCP; SIGHUP takes a renewed certificate; unusable files end the start with exit 1', async () => {
  const { makeCertificate } = await import('../helpers/tls.js')
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const https = await import('node:https')
  const tls = await import('node:tls')
  const dir = await mkdtemp(`${tmpdir()}/mls-ds-process-tls-`)
  const certFile = `${dir}/cert.pem`
  const keyFile = `${dir}/key.pem`
  const fingerprintOf = (port: number, ca: string) => new Promise<string>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/health', ca, agent: false }, (res) => {
      res.resume()
      resolve((res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256)
    }).on('error', reject)
  })
  try {
    const first = await makeCertificate('first.example')
    await writeFile(certFile, first.cert)
    await writeFile(keyFile, first.key)
    const proc = startProcess({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, LOG_LEVEL: 'info' })
    const ports = await waitFor(() => portsFrom(proc.lines()), 'both listeners')
    assert.ok(proc.lines().some((l) => /\(HTTPS REST API\)$/.test(String(l.msg))))
    assert.ok(proc.lines().some((l) => /\(legacy TCP-JSON over TLS\)$/.test(String(l.msg))))
    assert.equal(await fingerprintOf(ports.HTTP, first.cert), first.fingerprint256)
    const socket = tls.connect({ host: '127.0.0.1', port: ports['legacy TCP'], ca: first.cert })
    await once(socket, 'secureConnect')
    socket.destroy()

    const renewed = await makeCertificate('renewed.example')
    await writeFile(certFile, renewed.cert)
    await writeFile(keyFile, renewed.key)
    proc.child.kill('SIGHUP')
    await waitFor(() => (proc.lines().some((l) => l.msg === 'TLS certificate reloaded') ? true : undefined), 'the reload log line')
    assert.equal(await fingerprintOf(ports.HTTP, renewed.cert), renewed.fingerprint256)
    assert.ok(!proc.output().includes('PRIVATE KEY'), 'the key is not logged')
    proc.child.kill('SIGTERM')
    const [code] = await once(proc.child, 'exit')
    assert.equal(code, 0)

    await writeFile(keyFile, first.key)
    const refused = startProcess({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, LOG_LEVEL: 'silent' })
    const [refusedCode] = await once(refused.child, 'exit')
    assert.equal(refusedCode, 1)
    assert.match(refused.output(), /^error: TLS_KEY_FILE .* is not the private key of the certificate in TLS_CERT_FILE/m)
    const half = startProcess({ TLS_CERT_FILE: certFile })
    const [halfCode] = await once(half.child, 'exit')
    assert.equal(halfCode, 2)
    assert.match(half.output(), /TLS_CERT_FILE is set without TLS_KEY_FILE/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('--help prints every setting and exits 0', async () => {
  const proc = startProcess({}, ['--help'])
  const [code] = await once(proc.child, 'exit')
  assert.equal(code, 0)
  assert.match(proc.output(), /MAX_MESSAGE_BYTES/)
  assert.match(proc.output(), /--tcp-port/)
})

test('RUST_LOG=debug is honoured and the original log lines appear', async () => {
  // Placeholder bytes as the original's clients send: permissive keeps them as legacy data.
  const proc = startProcess({ RUST_LOG: 'debug', MLS_VALIDATION: 'permissive' })
  const ports = await waitFor(() => portsFrom(proc.lines()), 'both listeners')
  const post = (path: string, body: unknown) => fetch(`http://127.0.0.1:${ports.HTTP}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  await fetch(`http://127.0.0.1:${ports.HTTP}/key-packages/u1`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key_package: 'AAAA' }) })
  await fetch(`http://127.0.0.1:${ports.HTTP}/key-packages/u1`)
  await post('/groups', { group_id: 'g1', creator_id: 'u1' })
  await post('/groups/g1/messages', { sender_id: 'u1', message: 'AAAA', message_type: 'Application' })
  const messages = await waitFor(() => {
    const msgs = proc.lines().map((l) => String(l.msg))
    return msgs.includes('Relayed message from u1 to group g1') ? msgs : undefined
  }, 'the relay log line')
  assert.ok(messages.includes('Stored KeyPackage for client: u1'))
  assert.ok(messages.includes('Created group: g1 by u1'))
  assert.ok(proc.lines().some((l) => l.level === 20), 'debug lines are logged')
  proc.child.kill('SIGTERM')
  await once(proc.child, 'exit')
})

test('SIGTERM ends live WebSocket streams with close code 1001 and exits 0', async () => {
  const { default: WebSocket } = await import('ws')
  const proc = startProcess({})
  const ports = await waitFor(() => portsFrom(proc.lines()), 'both listeners')
  const ws = new WebSocket(`ws://127.0.0.1:${ports.HTTP}/clients/watcher/stream`)
  await once(ws, 'open')
  const closed = once(ws, 'close')
  proc.child.kill('SIGTERM')
  const [code] = await closed
  assert.equal(code, 1001)
  const [exitCode] = await once(proc.child, 'exit')
  assert.equal(exitCode, 0)
})
