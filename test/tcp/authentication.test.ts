import assert from 'node:assert/strict'
import type net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { SignJWT } from 'jose'
import { CLOCK_TOLERANCE_SECONDS, TokenVerifier } from '../../src/auth/token-verifier.js'
import { hmacToken, TEST_SECRET } from '../helpers/tokens.js'
import { ascii, connect, LineReader, request, startServer, type Harness } from './helpers.js'

/** A connection that answers request by request (real socket). */
class Conn {
  private constructor(readonly socket: net.Socket, readonly reader: LineReader) {}
  static async open(port: number): Promise<Conn> {
    const socket = await connect(port)
    return new Conn(socket, new LineReader(socket))
  }

  async ask(body: unknown): Promise<any> {
    this.socket.write(`${JSON.stringify(body)}\n`)
    return this.reader.next()
  }

  close(): void {
    this.socket.destroy()
  }
}

describe('TCP with AUTH=jwt', () => {
  let server: Harness
  const open: Conn[] = []
  const as = async (client: string) => {
    const conn = await Conn.open(server.port)
    open.push(conn)
    const answer = await conn.ask({ type: 'Authenticate', token: await hmacToken(client) })
    assert.equal(answer.type, 'Authenticated', JSON.stringify(answer))
    return conn
  }
  before(async () => {
    server = await startServer({ verifier: new TokenVerifier({ secret: TEST_SECRET }), mlsValidation: 'permissive' })
  })
  after(async () => {
    for (const conn of open) conn.close()
    await server.close()
  })

  test('nothing but Authenticate before a token; a bad token is refused and changes nothing', async () => {
    const refused = await request(server.port, { type: 'CreateGroup', group_id: 'g-anon', creator_id: 'alice' })
    assert.deepEqual(refused, { type: 'Error', message: 'Failed to create group: send {"type":"Authenticate","token":"<JWT>"} first (AUTH=jwt)', code: 'unauthenticated' })
    const conn = await Conn.open(server.port)
    open.push(conn)
    const bad = await conn.ask({ type: 'Authenticate', token: await hmacToken('alice', { secret: 'some other secret, at least 32 characters' }) })
    assert.equal(bad.type, 'Error')
    assert.equal(bad.code, 'unauthenticated')
    assert.match(bad.message, /^Failed to authenticate: the token signature does not verify/)
    assert.equal((await conn.ask({ type: 'ListKeyPackages' })).code, 'unauthenticated', 'still not authenticated')
    // Malformed input is answered as always, before any question of tokens.
    assert.match((await conn.ask('not an object')).message, /^Invalid message format/)
    const alice = await as('alice')
    assert.equal((await alice.ask({ type: 'GetGroup', group_id: 'g-anon' })).code, 'group_not_found', 'the refused CreateGroup created nothing')
  })

  test('the REST rules: only as oneself, only as a member', async () => {
    const alice = await as('alice')
    const eve = await as('eve')
    assert.equal((await eve.ask({ type: 'CreateGroup', group_id: 'team', creator_id: 'alice' })).code, 'forbidden')
    assert.deepEqual(await alice.ask({ type: 'CreateGroup', group_id: 'team', creator_id: 'alice' }), { type: 'GroupResponse', group_id: 'team', members: ['alice'] })
    for (const body of [
      { type: 'JoinGroup', group_id: 'team', client_id: 'eve' },
      { type: 'GetGroup', group_id: 'team' },
      { type: 'ReadMessages', group_id: 'team' },
      { type: 'DeleteGroup', group_id: 'team' },
      { type: 'LeaveGroup', group_id: 'team', client_id: 'alice' },
      { type: 'RelayMessage', group_id: 'team', sender_id: 'alice', message: ascii('forged'), message_type: 'Application' },
      { type: 'CommitBundle', group_id: 'team', sender_id: 'alice', commit: ascii('forged') },
      { type: 'StoreKeyPackage', client_id: 'alice', key_package: ascii('kp') },
      { type: 'StoreKeyPackages', client_id: 'alice', key_packages: [ascii('kp')] },
      { type: 'CountKeyPackages', client_id: 'alice' },
      { type: 'DeleteKeyPackages', client_id: 'alice' },
      { type: 'DeleteKeyPackage', client_id: 'alice', ref: 'abcd' },
      { type: 'ReadWelcomes', client_id: 'alice' },
      { type: 'Subscribe', client_id: 'alice' },
      { type: 'Ack', client_id: 'alice', up_to: 10 },
      { type: 'ListClientGroups', client_id: 'alice' },
      { type: 'DeleteClient', client_id: 'alice' },
    ]) {
      const answer = await eve.ask(body)
      assert.equal(answer.code, 'forbidden', `${body.type}: ${JSON.stringify(answer)}`)
    }
    assert.deepEqual((await alice.ask({ type: 'GetGroup', group_id: 'team' })).members, ['alice'], "eve's requests changed nothing")
    assert.equal((await alice.ask({ type: 'RelayMessage', group_id: 'team', sender_id: 'alice', message: ascii('hi'), message_type: 'Application' })).success, true)
    // Anyone signed in may claim a KeyPackage; a GroupInfo is the members' (its tree names them).
    assert.equal((await eve.ask({ type: 'FetchKeyPackage', client_id: 'alice' })).type, 'KeyPackageResponse')
    assert.equal((await eve.ask({ type: 'GetGroupInfo', group_id: 'team' })).code, 'forbidden')
    assert.equal((await alice.ask({ type: 'GetGroupInfo', group_id: 'team' })).code, 'group_info_not_found')
    assert.deepEqual(await alice.ask({ type: 'ListClientGroups', client_id: 'alice' }), { type: 'ClientGroupsResponse', client_id: 'alice', groups: ['team'] })
  })

  test('a client deletes only itself', async () => {
    const carol = await as('carol')
    assert.equal((await carol.ask({ type: 'CreateGroup', group_id: 'carols', creator_id: 'carol' })).type, 'GroupResponse')
    const eve = await as('eve')
    const refused = await eve.ask({ type: 'DeleteClient', client_id: 'carol' })
    assert.deepEqual(refused, { type: 'Error', message: 'Failed to delete client: only "carol" may delete it; the token is for "eve"', code: 'forbidden' })
    assert.deepEqual((await carol.ask({ type: 'GetGroup', group_id: 'carols' })).members, ['carol'], 'nothing changed')
    assert.deepEqual(await carol.ask({ type: 'DeleteClient', client_id: 'carol' }), { type: 'ClientDeletedResponse', client_id: 'carol', groups_left: 1, key_packages_deleted: 0, deliveries_deleted: 0, welcomes_deleted: 0 })
  })

  test('one client per connection; a fresh token of the same client is taken', async () => {
    const bob = await as('bob')
    const other = await bob.ask({ type: 'Authenticate', token: await hmacToken('carol') })
    assert.equal(other.code, 'forbidden')
    const again = await bob.ask({ type: 'Authenticate', token: await hmacToken('bob', { expiresIn: 7200 }) })
    assert.equal(again.type, 'Authenticated')
    assert.equal(again.client_id, 'bob')
    assert.ok(Date.parse(again.expires_at) > Date.now() + 3600_000)
  })

  test("a member's message reaches bob's TCP stream", async () => {
    const alice = await as('alice')
    await alice.ask({ type: 'CreateGroup', group_id: 'shared', creator_id: 'alice' })
    await alice.ask({ type: 'JoinGroup', group_id: 'shared', client_id: 'bob' })
    const bob = await as('bob')
    assert.equal((await bob.ask({ type: 'Subscribe', client_id: 'bob' })).type, 'Subscribed')
    await alice.ask({ type: 'RelayMessage', group_id: 'shared', sender_id: 'alice', message: ascii('to bob'), message_type: 'Application' })
    let delivery
    do delivery = await bob.reader.next()
    while (delivery.group_id !== 'shared')
    assert.equal(Buffer.from(delivery.message).toString(), 'to bob')
  })

  test('a token that "never" expires: expires_at is the last moment a date can hold', async () => {
    const conn = await Conn.open(server.port)
    open.push(conn)
    const token = await new SignJWT({ sub: 'erin' }).setExpirationTime(9_999_999_999_999).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET))
    assert.deepEqual(await conn.ask({ type: 'Authenticate', token }), { type: 'Authenticated', client_id: 'erin', expires_at: new Date(8.64e15).toISOString() })
    assert.equal((await conn.ask({ type: 'CountKeyPackages', client_id: 'erin' })).type, 'KeyPackageCountResponse')
  })

  test('a Subscribe that arrives after the expiry timer fired early (a clock stepped back) still ends with the token', async () => {
    const conn = await Conn.open(server.port)
    open.push(conn)
    // Accepted for 2 s more at least, within the clock tolerance.
    const authenticated = await conn.ask({ type: 'Authenticate', token: await hmacToken('frank', { expiresIn: -(CLOCK_TOLERANCE_SECONDS - 2) }) })
    assert.equal(authenticated.type, 'Authenticated')
    const realNow = Date.now
    const untilExpiry = Date.parse(authenticated.expires_at) - realNow()
    const stepped = () => realNow() - 3000
    Date.now = stepped
    try {
      // The timer set at Authenticate fires on time, but the clock now says the token has 3 s left.
      await new Promise((resolve) => setTimeout(resolve, untilExpiry + 100))
      assert.equal((await conn.ask({ type: 'Subscribe', client_id: 'frank' })).type, 'Subscribed')
    } finally {
      Date.now = realNow
    }
    const last = await conn.reader.ended(10_000)
    assert.equal(last.at(-1)?.code, 'unauthenticated')
    assert.match(last.at(-1)?.message, /^Token expired/)
  })

  test('a subscribed connection ends with an Error line when its token expires', async () => {
    const conn = await Conn.open(server.port)
    open.push(conn)
    // Accepted for 2 s more at least, within the clock tolerance.
    const token = await hmacToken('dave', { expiresIn: -(CLOCK_TOLERANCE_SECONDS - 2) })
    assert.equal((await conn.ask({ type: 'Authenticate', token })).type, 'Authenticated')
    assert.equal((await conn.ask({ type: 'Subscribe', client_id: 'dave' })).type, 'Subscribed')
    const last = await conn.reader.ended(10_000)
    assert.equal(last.at(-1)?.type, 'Error')
    assert.equal(last.at(-1)?.code, 'unauthenticated')
    assert.match(last.at(-1)?.message, /^Token expired/)
  })
})

test('TCP with AUTH=none: Authenticate is refused (no token is needed), everything else as before', async (t) => {
  const server = await startServer()
  t.after(() => server.close())
  const answer = await request(server.port, { type: 'Authenticate', token: await hmacToken('alice') })
  assert.equal(answer.code, 'bad_request')
  assert.match(answer.message, /AUTH=none/)
  assert.equal((await request(server.port, { type: 'ListKeyPackages' })).type, 'KeyPackageListResponse')
})
