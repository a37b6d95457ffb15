import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { pino } from 'pino'
import { LineReader, ascii, connect, legacyRequest, request, sleep, startServer, type Harness } from './helpers.js'

const LIST = '{"type":"ListKeyPackages"}'

describe('legacy TCP listener under load and abuse', () => {
  let h: Harness
  before(async () => {
    h = await startServer()
  })
  after(() => h.close())

  it('serves 200 concurrent connections, each running the original clients\' sequence', async () => {
    const run = async (n: number) => {
      const client = `user_${n}`
      const group = `group_${n}`
      const keyPackage = ascii(`base64_encoded_key_package_data_here_${n}`)
      assert.equal((await legacyRequest(h.port, { type: 'ListKeyPackages' })).type, 'KeyPackageListResponse')
      assert.equal((await legacyRequest(h.port, { type: 'StoreKeyPackage', client_id: client, key_package: keyPackage })).success, true)
      assert.deepEqual((await legacyRequest(h.port, { type: 'FetchKeyPackage', client_id: client })).key_package, keyPackage)
      assert.deepEqual((await legacyRequest(h.port, { type: 'CreateGroup', group_id: group, creator_id: client })).members, [client])
      const relay = { type: 'RelayMessage', group_id: group, sender_id: client, message: ascii('message_data'), message_type: 'Application' }
      assert.equal((await legacyRequest(h.port, relay)).message, 'Message relayed successfully')
      assert.equal((await legacyRequest(h.port, { type: 'InvalidMessageType' })).type, 'Error')
      assert.equal((await legacyRequest(h.port, { type: 'FetchKeyPackage', client_id: `nonexistent_${n}` })).key_package, null)
    }
    await Promise.all(Array.from({ length: 200 }, (_, n) => run(n)))
    const clients = (await request(h.port, LIST)).clients as string[]
    assert.equal(clients.filter((c) => c.startsWith('user_')).length, 200)
  })

  it('serves 200 concurrent persistent connections, each pipelining its sequence', async () => {
    const run = async (n: number) => {
      const socket = await connect(h.port)
      const reader = new LineReader(socket)
      const group = `pipe_${n}`
      socket.write(
        [
          { type: 'CreateGroup', group_id: group, creator_id: 'a' },
          { type: 'JoinGroup', group_id: group, client_id: 'b' },
          { type: 'RelayMessage', group_id: group, sender_id: 'b', message: [n % 256], message_type: 'Commit' },
          { type: 'ReadMessages', group_id: group },
        ]
          .map((r) => JSON.stringify(r))
          .join(''),
      )
      assert.deepEqual((await reader.next()).members, ['a'])
      assert.deepEqual((await reader.next()).members, ['a', 'b'])
      assert.equal((await reader.next()).success, true)
      assert.deepEqual((await reader.next()).messages.map((m: { message: number[] }) => m.message), [[n % 256]])
      socket.destroy()
    }
    await Promise.all(Array.from({ length: 200 }, (_, n) => run(n)))
  })

  it('is not disturbed by clients that disconnect mid-request or before their answer', async () => {
    const victims = await Promise.all(Array.from({ length: 20 }, () => connect(h.port)))
    const bystander = await connect(h.port)
    const reader = new LineReader(bystander)
    victims.forEach((socket, i) => {
      socket.on('error', () => {})
      if (i % 2 === 0) socket.write('{"type":"StoreKeyPackage","client_id":"half","key_pa')
      else socket.write(`${LIST}\n`.repeat(50)) // the server will be writing answers when it goes
    })
    victims.forEach((socket, i) => (i % 3 === 0 ? socket.resetAndDestroy() : socket.destroy()))
    bystander.write(`${LIST}\n`)
    assert.equal((await reader.next()).type, 'KeyPackageListResponse')
    bystander.destroy()
  })

  it('pauses reading from a client that does not read its answers, without slowing others', async () => {
    // Each answer is ~360 KB of JSON (ReadMessages of 100 KB of data); the client reads none.
    await request(h.port, { type: 'CreateGroup', group_id: 'flood', creator_id: 'a' })
    // Distinct bytes: the service treats the same bytes from the same sender as a retry.
    const data = (i: number) => [i, ...new Array(19_999).fill(255)]
    for (let i = 0; i < 5; i++) await request(h.port, { type: 'RelayMessage', group_id: 'flood', sender_id: 'a', message: data(i), message_type: 'Application' })
    const slow = await connect(h.port)
    slow.on('error', () => {}) // it leaves with answers unread
    slow.pause()
    // 100 KB requests (unknown fields are ignored), so that kernel buffers fill up after a few dozen.
    const read = `${JSON.stringify({ type: 'ReadMessages', group_id: 'flood', padding: 'x'.repeat(100_000) })}\n`
    let sent = 0
    let stuck = false
    while (!stuck && sent < 300) {
      sent++
      if (slow.write(read)) continue
      const drained = once(slow, 'drain').then(() => true)
      stuck = !(await Promise.race([drained, sleep(500).then(() => false)]))
    }
    assert.ok(stuck, `the server read all ${sent} requests (30 MB) without their answers being read`)
    const started = Date.now()
    assert.equal((await request(h.port, LIST)).type, 'KeyPackageListResponse')
    assert.ok(Date.now() - started < 1000)
    // Now read: every answer arrives, in order, complete.
    const reader = new LineReader(slow)
    slow.resume()
    for (let i = 0; i < sent; i++) {
      const answer = await reader.next(10_000)
      assert.equal(answer.type, 'MessagesResponse')
      assert.equal(answer.messages.length, 5)
    }
    slow.destroy()
  })

  it('is still answering after all of the abuse', async () => {
    assert.deepEqual(await legacyRequest(h.port, { type: 'FetchKeyPackage', client_id: 'user_7' }), {
      type: 'KeyPackageResponse',
      client_id: 'user_7',
      key_package: ascii('base64_encoded_key_package_data_here_7'),
    })
  })
})

describe('legacy TCP listener lifecycle', () => {
  it('logs the original\'s connect and disconnect lines', async () => {
    const lines: Array<{ level: number; msg: string }> = []
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
    const h = await startServer({ log })
    try {
      const socket = await connect(h.port)
      const { localPort } = socket
      socket.end()
      await once(socket, 'close')
      await sleep(20)
      assert.ok(lines.some((l) => l.level === 30 && l.msg === `New client connected from: 127.0.0.1:${localPort}`), JSON.stringify(lines))
      assert.ok(lines.some((l) => l.level === 30 && l.msg === 'Client disconnected'))
    } finally {
      await h.close()
    }
  })

  it('closes promptly with idle clients connected, answering requests already received', async () => {
    const h = await startServer({ closeGraceMs: 500 })
    const idle = await Promise.all(Array.from({ length: 5 }, () => connect(h.port)))
    const stubborn = await connect(h.port, { allowHalfOpen: true }) // never closes its side
    const busy = await connect(h.port)
    const reader = new LineReader(busy)
    busy.write(`${LIST}\n${LIST}\n`)
    await sleep(20)
    const started = Date.now()
    await h.close()
    assert.ok(Date.now() - started < 2000, `close took ${Date.now() - started} ms`)
    const answers = await reader.ended()
    assert.deepEqual(answers.map((a) => a.type), ['KeyPackageListResponse', 'KeyPackageListResponse'])
    for (const socket of [...idle, stubborn]) socket.destroy()
    await assert.rejects(connect(h.port))
  })

  it('closes idle connections after idleTimeoutMs when configured', async () => {
    const h = await startServer({ idleTimeoutMs: 100 })
    try {
      const socket = await connect(h.port)
      const reader = new LineReader(socket)
      socket.write(`${LIST}\n`)
      assert.equal((await reader.next()).type, 'KeyPackageListResponse')
      await reader.ended(2000)
    } finally {
      await h.close()
    }
  })

  it('answers an unexpected failure with a generic Error, logs it, and keeps the connection', async () => {
    const lines: Array<{ level: number; msg: string; err?: { message: string } }> = []
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
    const h = await startServer({ log })
    try {
      h.service.listKeyPackageClients = async () => {
        throw new Error('database on fire: secret detail')
      }
      const socket = await connect(h.port)
      const reader = new LineReader(socket)
      socket.write(`${LIST}\n{"type":"FetchKeyPackage","client_id":"a"}\n`)
      assert.deepEqual(await reader.next(), { type: 'Error', message: 'Failed to list key packages: Internal server error', code: 'internal' })
      assert.deepEqual(await reader.next(), { type: 'KeyPackageResponse', client_id: 'a', key_package: null })
      socket.destroy()
      assert.ok(lines.some((l) => l.level === 50 && l.err?.message === 'database on fire: secret detail'))
    } finally {
      await h.close()
    }
  })

  it('rejects bytes that are not MLS when mlsValidation is strict', async () => {
    const h = await startServer({ mlsValidation: 'strict' })
    try {
      const answer = await request(h.port, { type: 'StoreKeyPackage', client_id: 'a', key_package: ascii('base64_encoded_key_package_data_here') })
      assert.equal(answer.type, 'Error')
      assert.match(answer.message, /^Failed to store key package: /)
    } finally {
      await h.close()
    }
  })

  it('rejects listen() on a port in use', async () => {
    const h = await startServer()
    try {
      const { createTcpServer } = await import('../../src/tcp/server.js')
      const other = createTcpServer({ service: h.service, maxMessageBytes: 1024, log: pino({ level: 'silent' }) })
      await assert.rejects(other.listen(h.port, '127.0.0.1'), { code: 'EADDRINUSE' })
    } finally {
      await h.close()
    }
  })
})
