import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { buildApp } from '../../src/app.js'
import { redactQueryToken } from '../../src/http/log-controller.js'
import { CLOCK_TOLERANCE_SECONDS } from '../../src/auth/token-verifier.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { createBackend } from '../../src/storage/index.js'
import { buildTestApp, testConfig } from '../helpers/app.js'
import { hmacToken, TEST_SECRET } from '../helpers/tokens.js'

const JWT = { auth: 'jwt', authJwtSecret: TEST_SECRET } as const
const opaque = (text: string) => Buffer.from(text).toString('base64')

describe('REST with AUTH=jwt', () => {
  let app: FastifyInstance
  const tokens: Record<string, string> = {}
  before(async () => {
    ;({ app } = await buildTestApp({ ...JWT, mlsValidation: 'permissive' }))
    for (const name of ['alice', 'bob', 'eve', 'dave']) tokens[name] = await hmacToken(name)
  })
  after(() => app.close())

  /** A request as `who` (a client name with a token, or undefined for none). */
  const as = (who: string | undefined, options: InjectOptions) =>
    app.inject({ ...options, headers: { ...options.headers, ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}) } })
  const status = async (who: string | undefined, options: InjectOptions) => (await as(who, options)).statusCode

  test('no token: 401 with the Bearer challenge; a bad one: 401 invalid_token; health, readiness, metrics and docs stay open', async () => {
    let res = await as(undefined, { method: 'GET', url: '/key-packages/bob/count' })
    assert.equal(res.statusCode, 401)
    assert.equal(res.json().error, 'unauthenticated')
    assert.equal(res.headers['www-authenticate'], 'Bearer realm="mls-delivery-service"')
    for (const authorization of ['Bearer not.a.jwt', `Bearer ${await hmacToken('bob', { secret: 'someone else entirely, 32+ characters long' })}`, 'Basic Ym9iOmJvYg==', `Bearer ${await hmacToken('bob', { expiresIn: -(CLOCK_TOLERANCE_SECONDS + 5) })}`]) {
      res = await app.inject({ method: 'GET', url: '/key-packages/bob/count', headers: { authorization } })
      assert.equal(res.statusCode, 401, authorization)
      assert.equal(res.json().error, 'unauthenticated')
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="mls-delivery-service", error="invalid_token", error_description="[^"]+"$/)
    }
    // Every route of the API, unknown ids included, asks first.
    for (const [method, url] of [['GET', '/key-packages'], ['POST', '/groups'], ['GET', '/groups/__proto__'], ['GET', '/clients/x/messages'], ['GET', '/groups/g/group-info']] as const) {
      assert.equal(await status(undefined, { method, url, payload: method === 'POST' ? {} : undefined }), 401, `${method} ${url}`)
    }
    for (const url of ['/health', '/ready', '/metrics', '/openapi.json']) assert.equal(await status(undefined, { method: 'GET', url }), 200, url)
  })

  test('KeyPackages: a client fills, counts and empties only its own pool; anyone authenticated may claim', async () => {
    const put = (who: string, client: string) => status(who, { method: 'PUT', url: `/key-packages/${client}`, payload: { key_package: opaque(`kp of ${client}`) } })
    assert.equal(await put('bob', 'bob'), 200)
    const forbidden = await as('eve', { method: 'PUT', url: '/key-packages/bob', payload: { key_package: opaque('eve pretending') } })
    assert.equal(forbidden.statusCode, 403)
    assert.deepEqual(forbidden.json(), { error: 'forbidden', message: 'only "bob" may add KeyPackages to its pool; the token is for "eve"' })
    assert.equal(await status('eve', { method: 'GET', url: '/key-packages/bob/count' }), 403)
    assert.equal(await status('eve', { method: 'DELETE', url: '/key-packages/bob' }), 403)
    assert.equal(await status('eve', { method: 'DELETE', url: '/key-packages/bob/abcd' }), 403)
    assert.equal((await as('bob', { method: 'GET', url: '/key-packages/bob/count' })).json().total, 1)
    // Claiming is how a client adds another: any authenticated client may; eve's attempts changed nothing.
    const claim = await as('alice', { method: 'GET', url: '/key-packages/bob' })
    assert.equal(claim.statusCode, 200)
    assert.equal(Buffer.from(claim.json().key_package, 'base64').toString(), 'kp of bob')
    assert.deepEqual((await as('eve', { method: 'GET', url: '/key-packages' })).json().clients, ['bob'])
  })

  test('groups: create only as oneself; members read, add, remove and delete; others get 403 and change nothing', async () => {
    assert.equal(await status('eve', { method: 'POST', url: '/groups', payload: { group_id: 'team', creator_id: 'alice' } }), 403)
    assert.equal(await status('alice', { method: 'POST', url: '/groups', payload: { group_id: 'team', creator_id: 'alice' } }), 201)
    assert.equal(await status('eve', { method: 'GET', url: '/groups/team' }), 403)
    // Joining is being added by a member: eve cannot add herself.
    assert.equal(await status('eve', { method: 'POST', url: '/groups/team/members', payload: { client_id: 'eve' } }), 403)
    assert.equal(await status('alice', { method: 'POST', url: '/groups/team/members', payload: { client_id: 'bob' } }), 200)
    assert.equal(await status('eve', { method: 'DELETE', url: '/groups/team/members/bob' }), 403)
    assert.equal(await status('eve', { method: 'DELETE', url: '/groups/team' }), 403)
    assert.deepEqual((await as('bob', { method: 'GET', url: '/groups/team' })).json().members, ['alice', 'bob'])
    // A member leaves by itself, or is removed by another member.
    assert.equal(await status('bob', { method: 'DELETE', url: '/groups/team/members/bob' }), 204)
    assert.equal(await status('bob', { method: 'GET', url: '/groups/team' }), 403)
    assert.equal(await status('alice', { method: 'POST', url: '/groups/team/members', payload: { client_id: 'bob' } }), 200)
    assert.equal(await status('alice', { method: 'DELETE', url: '/groups/team/members/bob' }), 204)
    // An unknown group is still a 404 for whoever asks.
    assert.equal((await as('eve', { method: 'GET', url: '/groups/nowhere' })).json().error, 'group_not_found')
    assert.equal(await status('alice', { method: 'DELETE', url: '/groups/team' }), 204)
  })

  test("a client lists its own groups and deletes only itself; others get 403 and change nothing", async () => {
    assert.equal(await status('dave', { method: 'POST', url: '/groups', payload: { group_id: 'daves', creator_id: 'dave' } }), 201)
    assert.equal(await status('dave', { method: 'PUT', url: '/key-packages/dave', payload: { key_package: opaque('kp of dave, to delete') } }), 200)
    for (const [method, url] of [['GET', '/clients/dave/groups'], ['DELETE', '/clients/dave']] as const) {
      const refused = await as('eve', { method, url })
      assert.equal(refused.statusCode, 403, `${method} ${url}`)
      assert.equal(refused.json().error, 'forbidden')
      assert.equal(await status(undefined, { method, url }), 401, `${method} ${url} without a token`)
    }
    assert.deepEqual((await as('dave', { method: 'GET', url: '/clients/dave/groups' })).json().groups, ['daves'], "eve's delete changed nothing")
    const deleted = await as('dave', { method: 'DELETE', url: '/clients/dave' })
    assert.equal(deleted.statusCode, 200)
    assert.deepEqual([deleted.json().groups_left, deleted.json().key_packages_deleted], [1, 1])
    assert.deepEqual((await as('dave', { method: 'GET', url: '/clients/dave/groups' })).json().groups, [])
  })

  test('messages: a member sends only as itself and reads the log; a non-member reads nothing; nothing is stored for a refused send', async () => {
    await as('alice', { method: 'POST', url: '/groups', payload: { group_id: 'chat', creator_id: 'alice' } })
    await as('alice', { method: 'POST', url: '/groups/chat/members', payload: { client_id: 'bob' } })
    const send = (who: string, sender: string) => as(who, { method: 'POST', url: '/groups/chat/messages', payload: { sender_id: sender, message: opaque(`${sender} says hi`), message_type: 'Application' } })
    const spoofed = await send('bob', 'alice')
    assert.equal(spoofed.statusCode, 403)
    assert.equal(spoofed.json().error, 'forbidden')
    assert.equal((await send('alice', 'alice')).statusCode, 201)
    assert.equal((await as('eve', { method: 'POST', url: '/groups/chat/commits', payload: { sender_id: 'alice', commit: opaque('commit') } })).statusCode, 403)
    assert.equal(await status('eve', { method: 'GET', url: '/groups/chat/messages' }), 403)
    const log = await as('bob', { method: 'GET', url: '/groups/chat/messages' })
    assert.deepEqual(log.json().messages.map((m: { seq: number; sender_id: string }) => [m.seq, m.sender_id]), [[1, 'alice']])
    assert.equal((await as('alice', { method: 'GET', url: '/groups/chat' })).json().next_seq, 2)
    // A GroupInfo's ratchet tree names every member: members only.
    assert.equal((await as('eve', { method: 'GET', url: '/groups/chat/group-info' })).json().error, 'forbidden')
    assert.equal((await as('bob', { method: 'GET', url: '/groups/chat/group-info' })).json().error, 'group_info_not_found')
  })

  test("a client's queue and inbox are its own", async () => {
    await as('alice', { method: 'POST', url: '/groups', payload: { group_id: 'queue', creator_id: 'alice' } })
    await as('alice', { method: 'POST', url: '/groups/queue/members', payload: { client_id: 'bob' } })
    await as('alice', { method: 'POST', url: '/groups/queue/messages', payload: { sender_id: 'alice', message: opaque('for bob'), message_type: 'Application' } })
    for (const [method, url, payload] of [['GET', '/clients/bob/messages', undefined], ['GET', '/clients/bob/welcomes', undefined], ['POST', '/clients/bob/ack', { up_to: 100 }]] as const) {
      const res = await as('eve', { method, url, payload })
      assert.equal(res.statusCode, 403, url)
      assert.equal(res.json().error, 'forbidden')
    }
    const queue = await as('bob', { method: 'GET', url: '/clients/bob/messages' })
    assert.ok(queue.json().deliveries.length >= 1, "eve's ack dropped nothing")
    assert.equal((await as('bob', { method: 'POST', url: '/clients/bob/ack', payload: { up_to: queue.json().next_after } })).json().remaining, 0)
  })
})

describe('streams with AUTH=jwt', () => {
  let app: FastifyInstance
  let base: string
  before(async () => {
    ;({ app } = await buildTestApp({ ...JWT, mlsValidation: 'permissive' }))
    await app.listen({ host: '127.0.0.1', port: 0 })
    base = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  })
  after(() => app.close())

  /**
   * Opens a stream; resolves with the open socket, or the status and body it was refused with
   * once the server has closed the connection (a refused handshake must not keep its socket).
   */
  function open(path: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status?: number; body?: Record<string, unknown> }> {
    const ws = new WebSocket(`${base}${path}`, { headers })
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve({ ws }))
      ws.once('unexpected-response', (_req, res) => {
        let text = ''
        res.on('data', (chunk: Buffer) => (text += chunk.toString()))
        const kept = setTimeout(() => reject(new Error(`the server kept the socket of a refused handshake (${res.statusCode})`)), 10_000)
        res.socket.once('close', () => {
          clearTimeout(kept)
          resolve({ status: res.statusCode!, body: JSON.parse(text) })
        })
      })
      ws.once('error', reject)
    })
  }

  test('a stream needs its own client\'s token, in the Authorization header or as ?access_token=', async () => {
    assert.equal((await open('/clients/bob/stream')).status, 401)
    const eve = await open(`/clients/bob/stream?access_token=${await hmacToken('eve')}`)
    assert.equal(eve.status, 403)
    assert.equal(eve.body!.error, 'forbidden')
    const byQuery = await open(`/clients/bob/stream?after=0&access_token=${await hmacToken('bob')}`)
    assert.ok(byQuery.ws, 'opened with ?access_token=')
    const byHeader = await open('/clients/bob/stream', { authorization: `Bearer ${await hmacToken('bob')}` })
    assert.ok(byHeader.ws, 'opened with Authorization')
    // What the stream delivers is bob's: a message alice relays reaches both sockets.
    const alice = { authorization: `Bearer ${await hmacToken('alice')}` }
    await app.inject({ method: 'POST', url: '/groups', headers: alice, payload: { group_id: 'live', creator_id: 'alice' } })
    await app.inject({ method: 'POST', url: '/groups/live/members', headers: alice, payload: { client_id: 'bob' } })
    const frames = [byQuery.ws!, byHeader.ws!].map((ws) => new Promise<Record<string, unknown>>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data))))))
    await app.inject({ method: 'POST', url: '/groups/live/messages', headers: alice, payload: { sender_id: 'alice', message: opaque('live'), message_type: 'Application' } })
    for (const frame of await Promise.all(frames)) assert.equal(frame.group_id, 'live')
    byQuery.ws!.close()
    byHeader.ws!.close()
  })

  test('after its token expires, a stream acts on nothing more the peer sends, and a peer that ignores the close is cut off', async () => {
    const alice = { authorization: `Bearer ${await hmacToken('alice')}` }
    await app.inject({ method: 'POST', url: '/groups', headers: alice, payload: { group_id: 'late', creator_id: 'alice' } })
    await app.inject({ method: 'POST', url: '/groups/late/members', headers: alice, payload: { client_id: 'bob' } })
    const token = await hmacToken('bob', { expiresIn: -(CLOCK_TOLERANCE_SECONDS - 2) })
    const { ws } = await open(`/clients/bob/stream?access_token=${token}`)
    assert.ok(ws)
    // The peer takes the socket from its WebSocket library (so nothing answers the close), waits
    // for the server's close frame, and then writes frames of its own, by hand.
    const raw = (ws as unknown as { _socket: import('node:net').Socket })._socket
    raw.removeAllListeners('data')
    const closeFrame = new Promise<Buffer>((resolve) => raw.on('data', (chunk: Buffer) => {
      if (chunk[0] === 0x88) resolve(chunk)
    }))
    const cut = new Promise<void>((resolve) => raw.once('close', () => resolve()))
    const frame = await closeFrame
    assert.equal(frame.readUInt16BE(2), 4001)
    for (let i = 0; i < 3; i++) raw.write(maskedTextFrame(JSON.stringify({ type: 'send', id: i, group_id: 'late', message: opaque(`late ${i}`), message_type: 'Application' })))
    await cut
    const log = await app.inject({ method: 'GET', url: '/groups/late/messages', headers: alice })
    assert.deepEqual(log.json().messages, [], 'no frame after expiry was relayed')
  })

  test('an open stream is closed with 4001 when its token expires', async () => {
    // Expired 28 s ago: still accepted within the 30 s clock tolerance, for 2 s more at least.
    const token = await hmacToken('bob', { expiresIn: -(CLOCK_TOLERANCE_SECONDS - 2) })
    const { ws } = await open(`/clients/bob/stream?access_token=${token}`)
    assert.ok(ws)
    const [code, reason] = await new Promise<[number, string]>((resolve) => ws.once('close', (c, r) => resolve([c, String(r)])))
    assert.equal(code, 4001)
    assert.match(reason, /token expired/)
  })
})

/** A client's text frame (RFC 6455 §5.2: FIN, opcode 1, masked), for a peer that writes its own. */
function maskedTextFrame(text: string): Buffer {
  const payload = Buffer.from(text)
  const mask = Buffer.from([1, 2, 3, 4])
  const header = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
  return Buffer.concat([header, mask, Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!))])
}

test('a token in the query string is not written to the request log', async (t) => {
  const lines: string[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) })
  const config = { ...testConfig(), ...JWT }
  const backend = await createBackend({ ...config, store: 'memory' }, logger)
  const app = await buildApp({ config, service: new DeliveryService({ store: backend.store, bus: backend.bus, log: logger }), logger })
  t.after(async () => {
    await app.close()
    await backend.close()
  })
  const token = await hmacToken('bob')
  const res = await app.inject({ method: 'GET', url: `/clients/bob/stream?after=0&access_token=${token}` })
  assert.equal(res.statusCode, 426, 'authenticated, then asked for a WebSocket')
  // However the key is spelled for the router: percent-encoded, or after a '#'.
  assert.equal((await app.inject({ method: 'GET', url: `/clients/bob/stream?access%5Ftoken=${token}` })).statusCode, 426)
  await app.inject({ method: 'GET', url: `/clients/bob/messages?after=0&access_token=${token}&x=1` })
  const logged = lines.join('\n')
  assert.ok(logged.includes('access_token=[redacted]'), logged)
  assert.ok(!logged.includes(token.split('.')[2]!), 'the signature is nowhere in the log')
  for (const [url, redacted] of [
    ['/clients/bob/stream#access_token=abc.def.ghi', '/clients/bob/stream?access_token=[redacted]'],
    ['/clients/bob/stream?after=3&access%5Ftoken=abc&access_token=x', '/clients/bob/stream?after=3&access_token=[redacted]'],
    ['/groups/g/messages?after=1', '/groups/g/messages?after=1'],
  ]) assert.equal(redactQueryToken(url!), redacted)
})

test('without AUTH=jwt no token is needed, and one sent changes nothing', async (t) => {
  const { app } = await buildTestApp({ mlsValidation: 'permissive' })
  t.after(() => app.close())
  assert.equal((await app.inject({ method: 'POST', url: '/groups', payload: { group_id: 'open', creator_id: 'alice' } })).statusCode, 201)
  const res = await app.inject({ method: 'GET', url: '/groups/open', headers: { authorization: 'Bearer whatever' } })
  assert.equal(res.statusCode, 200)
})
