import assert from 'node:assert/strict'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { LineReader, connect, request, sleep, startServer, type Harness } from './helpers.js'

const LIST = '{"type":"ListKeyPackages"}'

describe('legacy TCP framing on the wire', () => {
  let h: Harness
  before(async () => {
    h = await startServer()
    await request(h.port, { type: 'CreateGroup', group_id: 'wire', creator_id: 'alice' })
  })
  after(() => h.close())

  it('answers a request that arrives one byte per segment', async () => {
    const socket = await connect(h.port)
    socket.setNoDelay(true)
    const reader = new LineReader(socket)
    for (const byte of Buffer.from(`${JSON.stringify({ type: 'CreateGroup', group_id: 'bytes', creator_id: 'ünï' })}\n`)) {
      socket.write(Buffer.of(byte))
      await sleep(1)
    }
    assert.deepEqual(await reader.next(), { type: 'GroupResponse', group_id: 'bytes', members: ['ünï'] })
    socket.destroy()
  })

  it('answers three requests in one segment, in order, with and without newlines', async () => {
    for (const separator of ['\n', '', ' \r\n\t']) {
      const socket = await connect(h.port)
      const reader = new LineReader(socket)
      socket.write(
        [
          JSON.stringify({ type: 'StoreKeyPackage', client_id: 'three', key_package: [1] }),
          JSON.stringify({ type: 'JoinGroup', group_id: 'nope', client_id: 'x' }),
          JSON.stringify({ type: 'FetchKeyPackage', client_id: 'three' }),
        ].join(separator) + separator,
      )
      assert.equal((await reader.next()).message, 'KeyPackage stored for three')
      assert.equal((await reader.next()).message, 'Failed to join group: Group not found: nope')
      assert.deepEqual((await reader.next()).key_package, [1])
      socket.destroy()
    }
  })

  it('answers a request with no trailing newline while the client waits', async () => {
    const socket = await connect(h.port)
    const reader = new LineReader(socket)
    socket.write(LIST)
    assert.equal((await reader.next()).type, 'KeyPackageListResponse')
    // The connection stays open for more.
    socket.write(LIST)
    assert.equal((await reader.next()).type, 'KeyPackageListResponse')
    socket.destroy()
  })

  it('accepts a 500 KB request (a relayed message of 150,000 bytes) in many segments', async () => {
    const data = [...randomBytes(150_000)]
    const body = Buffer.from(`${JSON.stringify({ type: 'RelayMessage', group_id: 'wire', sender_id: 'alice', message: data, message_type: 'Application' })}\n`)
    assert.ok(body.length > 500_000 && body.length < 1024 * 1024, `${body.length}`)
    const socket = await connect(h.port)
    const reader = new LineReader(socket)
    for (let i = 0; i < body.length; i += 7_000) socket.write(body.subarray(i, i + 7_000))
    assert.deepEqual(await reader.next(), { type: 'MessageResponse', success: true, message: 'Message relayed successfully' })
    socket.write(JSON.stringify({ type: 'ReadMessages', group_id: 'wire' }))
    const read = await reader.next()
    assert.deepEqual(read.messages.at(-1).message, data)
    socket.destroy()
  })

  it('answers malformed JSON with an Error and then the next request on the same connection', async () => {
    const socket = await connect(h.port)
    const reader = new LineReader(socket)
    socket.write('{"type": "ListKeyPackages",,}\n')
    assert.deepEqual(await reader.next(), { type: 'Error', message: 'Invalid message format: key must be a string at line 1 column 28' })
    socket.write('{"type":"FetchKeyPackage","client_id":"x" oops}\n' + LIST + '\n')
    assert.equal((await reader.next()).type, 'Error')
    assert.equal((await reader.next()).type, 'KeyPackageListResponse')
    // An unclosed request followed by a good one on the next line.
    socket.write('{"type":"ListKeyPackages"\n' + LIST + '\n')
    assert.equal((await reader.next()).type, 'Error')
    assert.equal((await reader.next()).type, 'KeyPackageListResponse')
    socket.destroy()
  })

  it('answers garbage and random bytes with Errors and stays usable', async () => {
    const socket = await connect(h.port)
    const reader = new LineReader(socket)
    socket.write('hello\n')
    assert.deepEqual(await reader.next(), { type: 'Error', message: 'Invalid message format: expected value at line 1 column 1' })
    // Random bytes without newlines or braces, then a newline: one line of garbage.
    const noise = randomBytes(4096).map((b) => (b === 0x0a || b === 0x7b || b === 0x5b || b === 0x22 ? 0x21 : b))
    noise[0] = 0x78 // starts like garbage, not like a number (a number would be a value of its own)
    socket.write(Buffer.concat([noise, Buffer.from('\n' + LIST + '\n')]))
    const answers = [await reader.next(), await reader.next()]
    assert.equal(answers[0].type, 'Error')
    assert.match(answers[0].message, /^Invalid message format: /)
    assert.equal(answers[1].type, 'KeyPackageListResponse')
    socket.destroy()
  })

  it('answers an over-limit request with one Error and closes the connection', async () => {
    const small = await startServer({ maxMessageBytes: 1024 })
    try {
      const socket = await connect(small.port)
      const reader = new LineReader(socket)
      socket.write(LIST + '\n')
      socket.write(JSON.stringify({ type: 'StoreKeyPackage', client_id: 'big', key_package: new Array(2000).fill(200) }) + '\n' + LIST + '\n')
      const answers = [await reader.next(), ...(await reader.ended())]
      assert.equal(answers[0].type, 'KeyPackageListResponse')
      assert.deepEqual(answers.slice(1), [{ type: 'Error', message: 'Invalid message format: request larger than 1024 bytes' }])
      // The limit is per request: the server still answers new connections.
      assert.equal((await request(small.port, LIST)).type, 'KeyPackageListResponse')
    } finally {
      await small.close()
    }
  })

  it('answers a request that is still streaming past the limit, while the client keeps sending', async () => {
    const small = await startServer({ maxMessageBytes: 64 * 1024 })
    try {
      const socket = await connect(small.port)
      const reader = new LineReader(socket)
      socket.on('error', () => {}) // the server may stop reading before we stop writing
      socket.write('{"type":"StoreKeyPackage","client_id":"x","key_package":[')
      const filler = Buffer.from('1,'.repeat(16 * 1024))
      for (let i = 0; i < 16 && !socket.destroyed; i++) {
        socket.write(filler)
        await sleep(2)
      }
      assert.deepEqual(await reader.ended(), [{ type: 'Error', message: `Invalid message format: request larger than ${64 * 1024} bytes` }])
    } finally {
      await small.close()
    }
  })

  it('answers a request sent with a half-close, then closes (echo … | nc)', async () => {
    const socket = await connect(h.port, { allowHalfOpen: true })
    const reader = new LineReader(socket)
    socket.end(LIST + '\n')
    assert.deepEqual(await reader.ended(), [{ type: 'KeyPackageListResponse', clients: (await request(h.port, LIST)).clients }])
  })

  it('answers every request before the half-close, and a last one without a newline', async () => {
    const socket = await connect(h.port, { allowHalfOpen: true })
    const reader = new LineReader(socket)
    socket.end(`${LIST}\n{"type":"GetGroup","group_id":"wire"}\n${LIST}`)
    const answers = await reader.ended()
    assert.deepEqual(answers.map((a) => a.type), ['KeyPackageListResponse', 'GroupResponse', 'KeyPackageListResponse'])
  })

  it('answers an unfinished request at half-close with an Error, then closes', async () => {
    const socket = await connect(h.port, { allowHalfOpen: true })
    const reader = new LineReader(socket)
    socket.end('{"type":"ListKeyPa')
    assert.deepEqual(await reader.ended(), [{ type: 'Error', message: 'Invalid message format: EOF while parsing a string at line 1 column 19' }])
  })

  it('closes after a half-close with nothing sent', async () => {
    const socket = await connect(h.port, { allowHalfOpen: true })
    const reader = new LineReader(socket)
    socket.end()
    assert.deepEqual(await reader.ended(), [])
    await once(socket, 'close')
  })
})
