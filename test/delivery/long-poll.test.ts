import assert from 'node:assert/strict'
import net from 'node:net'
import { describe, test } from 'node:test'
import { buildApp } from '../../src/app.js'
import type { Config } from '../../src/config.js'
import { CLOCK_TOLERANCE_SECONDS } from '../../src/auth/token-verifier.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { createBackend } from '../../src/storage/index.js'
import { silentLogger, testConfig } from '../helpers/app.js'
import { LocalDeliveryBus } from '../../src/service/delivery-bus.js'
import { DeliveryWaiter } from '../../src/service/delivery-waiter.js'
import { startTestService, useTestService } from '../helpers/service.js'
import { RestApi } from '../helpers/rest-api.js'
import { hmacToken, JwksIssuer, TEST_SECRET } from '../helpers/tokens.js'
import { until } from '../helpers/until.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')

/** GET /clients/{client}/messages?wait=N: a read that finds nothing waits for the next delivery. */
describe('long polling a client\'s queue', () => {
  const suite = useTestService({ mlsValidation: 'permissive' })
  const send = (group: string, text: string) => suite.api.call('POST', `/groups/${group}/messages`, { sender_id: 'alice', message: text64(text), message_type: 'Application' })
  const join = async (group: string, ...members: string[]) => {
    assert.equal((await suite.api.call('POST', '/groups', { group_id: group, creator_id: 'alice' })).status, 201)
    for (const m of members) assert.equal((await suite.api.call('POST', `/groups/${group}/members`, { client_id: m })).status, 200)
  }

  test('is answered with the delivery as soon as one is queued, well within its wait', async () => {
    await join('poll', 'bob')
    // 60 s: had the delivery not woken it, the answer would come after a minute, empty.
    const polled = suite.api.call('GET', '/clients/bob/messages?after=0&wait=60')
    await new Promise((resolve) => setTimeout(resolve, 100))
    assert.equal((await send('poll', 'hello')).status, 201)
    const reply = await polled
    assert.equal(reply.status, 200)
    assert.deepEqual(reply.body.deliveries.map((d: any) => Buffer.from(d.message, 'base64').toString()), ['hello'])
    assert.equal(reply.body.next_after, 1)
  })

  test('answers at once when something is queued already, and with an empty page when nothing came in time', async () => {
    await join('quiet', 'carol')
    assert.equal((await send('quiet', 'first')).status, 201)
    const queued = await suite.api.call('GET', '/clients/carol/messages?after=0&wait=60')
    assert.equal(queued.body.deliveries.length, 1)
    const nothing = await suite.api.call('GET', '/clients/carol/messages?after=1&wait=1')
    assert.equal(nothing.status, 200)
    assert.deepEqual(nothing.body, { client_id: 'carol', deliveries: [], next_after: 1 })
  })

  test('a delivery at or before its cursor, or to another client, does not end the wait', async () => {
    await join('others', 'dave', 'erin')
    const polled = suite.api.call('GET', '/clients/dave/messages?after=5&wait=2')
    await new Promise((resolve) => setTimeout(resolve, 100))
    // Dave's delivery 1 (before his cursor 5) and erin's wake nothing he can read.
    assert.equal((await send('others', 'one')).status, 201)
    const reply = await polled
    assert.deepEqual(reply.body, { client_id: 'dave', deliveries: [], next_after: 5 })
  })

  test('wait is checked: a whole number of seconds, at most 60', async () => {
    for (const wait of ['61', '-1', '1.5', 'soon']) {
      const reply = await suite.api.call('GET', `/clients/bob/messages?wait=${wait}`)
      assert.equal(reply.status, 400, wait)
      assert.equal(reply.body.error, 'bad_request')
      assert.match(reply.body.message, /'wait'/)
    }
  })
})

test('a stopping service answers its long polls at once, with what there is', async () => {
  const running = await startTestService({ mlsValidation: 'permissive' })
  const api = new RestApi(running.httpPort)
  const polled = api.call('GET', '/clients/zed/messages?after=0&wait=60')
  await new Promise((resolve) => setTimeout(resolve, 100))
  await running.close()
  // Had the stop not ended the wait, SHUTDOWN_TIMEOUT_MS would have cut the connection unanswered.
  const reply = await polled
  assert.equal(reply.status, 200)
  assert.deepEqual(reply.body, { client_id: 'zed', deliveries: [], next_after: 0 })
})

/** The local bus, counting its listeners. */
class CountingBus extends LocalDeliveryBus {
  listeners = 0
  override subscribe(clientId: string, listener: () => void): () => void {
    this.listeners++
    const unsubscribe = super.subscribe(clientId, listener)
    return () => {
      this.listeners--
      unsubscribe()
    }
  }
}

test('DeliveryWaiter: a wake before the wait is kept; the time up and an abort end it; close lets go of the bus', async () => {
  const bus = new CountingBus()
  const early = new DeliveryWaiter(bus, 'bob', 60_000)
  bus.publish(['bob'])
  assert.equal(await early.next(), true, 'the wake before next() is not lost')
  const later = early.next()
  bus.publish(['alice'])
  bus.publish(['bob'])
  assert.equal(await later, true)
  assert.equal(bus.listeners, 1)
  early.close()
  assert.equal(await early.next(), false, 'closed: no more waiting')

  const timed = new DeliveryWaiter(bus, 'bob', 20)
  assert.equal(await timed.next(), false)
  timed.close()

  const controller = new AbortController()
  const aborted = new DeliveryWaiter(bus, 'bob', 60_000, controller.signal)
  const waiting = aborted.next()
  controller.abort()
  assert.equal(await waiting, false)
  aborted.close()
  const already = new DeliveryWaiter(bus, 'bob', 60_000, controller.signal)
  assert.equal(await already.next(), false, 'a signal aborted before the wait')
  already.close()
  assert.equal(bus.listeners, 0, 'every closed waiter let go of the bus')
})

/**
 * The REST app on a free port over a memory store whose bus counts its listeners; `poll` sends
 * one request on a socket of its own. Closes with `close()`.
 */
async function appOverCountingBus(overrides: Partial<Config> = {}) {
  const bus = new CountingBus()
  const config = { ...testConfig(), ...overrides }
  const backend = await createBackend(config, silentLogger)
  const service = new DeliveryService({ store: backend.store, bus, log: silentLogger, pageMaxBytes: config.maxMessageBytes })
  const app = await buildApp({ config, service, logger: silentLogger })
  const close = async () => {
    await app.close()
    await backend.close()
  }
  try {
    await app.listen({ port: 0, host: '127.0.0.1' })
  } catch (err) {
    await close()
    throw err
  }
  const poll = (request: string) => {
    const socket = net.connect((app.server.address() as net.AddressInfo).port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write(request)
    return socket
  }
  return { bus, service, poll, close }
}

test('a client that goes away while it waits ends its wait', async () => {
  const t = await appOverCountingBus()
  try {
    const socket = t.poll('GET /clients/yan/messages?after=0&wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await until(() => t.bus.listeners === 1, 'the wait to start')
    socket.destroy()
    await until(() => t.bus.listeners === 0, 'the wait to end with its client')
  } finally {
    await t.close()
  }
})

describe('long polling with AUTH=jwt', () => {
  test('a poll whose token is still being verified when the service stops is answered at once', async () => {
    const issuer = await JwksIssuer.start(1, { delayMs: 2000 })
    const running = await startTestService({ auth: 'jwt', authJwksUrl: issuer.url, shutdownTimeoutMs: 20_000 })
    try {
      const api = new RestApi(running.httpPort, await issuer.sign('bob'))
      const polled = api.call('GET', '/clients/bob/messages?after=0&wait=60')
      await until(() => issuer.fetches > 0, 'the token being verified')
      await running.close()
      // Had the stop missed it, it would have waited on, and been cut at SHUTDOWN_TIMEOUT_MS unanswered.
      const reply = await polled
      assert.equal(reply.status, 200)
      assert.deepEqual(reply.body, { client_id: 'bob', deliveries: [], next_after: 0 })
    } finally {
      await running.close()
      await issuer.stop()
    }
  })

  test('a client that leaves while its token is verified leaves no wait behind', async () => {
    const issuer = await JwksIssuer.start(1, { delayMs: 300 })
    const t = await appOverCountingBus({ auth: 'jwt', authJwksUrl: issuer.url })
    let reads = 0
    const read = t.service.readDeliveries.bind(t.service)
    t.service.readDeliveries = (...args) => {
      reads++
      return read(...args)
    }
    try {
      const socket = t.poll(`GET /clients/bob/messages?after=0&wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${await issuer.sign('bob')}\r\n\r\n`)
      await until(() => issuer.fetches > 0, 'the token being verified')
      socket.destroy()
      await until(() => reads > 0, 'the handler reading the queue')
      await until(() => t.bus.listeners === 0, 'no wait left behind')
    } finally {
      await t.close()
      await issuer.stop()
    }
  })

  test('a poll waits no longer than its token is accepted', async () => {
    const running = await startTestService({ auth: 'jwt', authJwtSecret: TEST_SECRET, mlsValidation: 'permissive' })
    try {
      const alice = new RestApi(running.httpPort, await hmacToken('alice'))
      assert.equal((await alice.call('POST', '/groups', { group_id: 'expiring', creator_id: 'alice' })).status, 201)
      assert.equal((await alice.call('POST', '/groups/expiring/members', { client_id: 'bob' })).status, 200)
      // Accepted for 2 to 3 s more.
      const bob = new RestApi(running.httpPort, await hmacToken('bob', { expiresIn: -(CLOCK_TOLERANCE_SECONDS - 2) }))
      const polled = bob.call('GET', '/clients/bob/messages?after=0&wait=30')
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 100))
        if ((await bob.call('GET', '/clients/bob/messages?after=0')).status === 401) break
      }
      await new Promise((resolve) => setTimeout(resolve, 200))
      // Sent after the token stopped being accepted: not for the poll made with it.
      assert.equal((await alice.call('POST', '/groups/expiring/messages', { sender_id: 'alice', message: text64('late'), message_type: 'Application' })).status, 201)
      const reply = await polled
      assert.equal(reply.status, 200)
      assert.deepEqual(reply.body.deliveries, [])
    } finally {
      await running.close()
    }
  })
})
