import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, test } from 'node:test'
import { WebhookChannel, webhookKey } from '../../src/push/webhook.js'
import { PushGateway } from '../helpers/push-gateway.js'

let gateway: PushGateway
before(async () => {
  gateway = await PushGateway.start()
})
after(() => gateway.close())

const never = new AbortController().signal
const channel = (options: { url?: string; timeoutMs?: number } = {}) =>
  new WebhookChannel({ url: options.url ?? gateway.url, secret: PushGateway.SECRET, timeoutMs: options.timeoutMs })

test('a call is a signed Standard Webhooks POST naming the clients, with an id of its own', async () => {
  const from = gateway.calls.length
  const outcome = await channel().send(['bob', '__proto__', 'équipe ✓'], never)
  assert.deepEqual(outcome, { ok: true })
  const call = gateway.calls[from]!
  assert.ok(call.verified, 'the standardwebhooks library verifies the signature')
  assert.match(call.id, /^msg_[0-9a-f-]{36}$/)
  await channel().send(['bob'], never)
  assert.notEqual(gateway.calls[from + 1]!.id, call.id, 'each call has its own id')
  assert.ok(Math.abs(call.timestamp - Date.now() / 1000) < 5)
  assert.deepEqual(call.body, { type: 'deliveries', clients: ['bob', '__proto__', 'équipe ✓'] })
})

test('a signature under another secret does not verify', async () => {
  const from = gateway.calls.length
  const other = new WebhookChannel({ url: gateway.url, secret: `whsec_${Buffer.alloc(32, 8).toString('base64')}` })
  await other.send(['bob'], never)
  assert.equal(gateway.calls[from]!.verified, false)
})

test('timeouts, 408, 429 and 5xx are worth a retry (after Retry-After when given); other answers are not', async () => {
  gateway.answerNext(
    { status: 503, headers: { 'retry-after': '7' } },
    { status: 429, headers: { 'retry-after': new Date(Date.now() + 30_000).toUTCString() } },
    { status: 408 },
    { status: 500 },
    { status: 400 },
    { status: 410 },
    { status: 302, headers: { location: gateway.url } },
    { status: 413 },
    { status: 503, headers: { 'retry-after': '1.5' } },
    { status: 503, headers: { 'retry-after': '-1' } },
  )
  const send = () => channel().send(['bob'], never)
  const unavailable = await send()
  assert.ok(!unavailable.ok && unavailable.retry)
  assert.equal(unavailable.retryAfterMs, 7000)
  const limited = await send()
  assert.ok(!limited.ok && limited.retry && limited.retryAfterMs! > 20_000 && limited.retryAfterMs! <= 30_000, JSON.stringify(limited))
  for (const status of [408, 500]) {
    const outcome = await send()
    assert.ok(!outcome.ok && outcome.retry && outcome.retryAfterMs === undefined, `${status}: ${JSON.stringify(outcome)}`)
    assert.match(outcome.problem, new RegExp(String(status)))
  }
  const from = gateway.calls.length
  for (const status of [400, 410, 302]) {
    const outcome = await send()
    assert.ok(!outcome.ok && !outcome.retry, `${status}: ${JSON.stringify(outcome)}`)
  }
  assert.equal(gateway.calls.length - from, 3, 'the redirect is not followed')
  const tooLarge = await send()
  assert.ok(!tooLarge.ok && !tooLarge.retry && tooLarge.tooLarge, JSON.stringify(tooLarge))
  for (const header of ['1.5', '-1']) {
    const outcome = await send()
    assert.ok(!outcome.ok && outcome.retry && outcome.retryAfterMs === undefined, `Retry-After ${header} is not a delay: ${JSON.stringify(outcome)}`)
  }
})

test('a gateway that does not answer in time or cannot be reached is worth a retry', async () => {
  gateway.answerNext('hang')
  const slow = await channel({ timeoutMs: 200 }).send(['bob'], never)
  assert.ok(!slow.ok && slow.retry, JSON.stringify(slow))
  assert.match(slow.problem, /no answer within 200 ms/)

  const closed = net.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as net.AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const unreachable = await channel({ url: `http://127.0.0.1:${port}/hook?token=t0ps3cret` }).send(['bob'], never)
  assert.ok(!unreachable.ok && unreachable.retry, JSON.stringify(unreachable))
  assert.match(unreachable.problem, /ECONNREFUSED/)
  assert.doesNotMatch(unreachable.problem, /t0ps3cret|127\.0\.0\.1/, 'the URL (it may hold a token) is not in the problem that is logged')
})

test('a call is abandoned when the notifier stops, not at its timeout', { timeout: 20_000 }, async () => {
  gateway.answerNext('hang')
  const stop = new AbortController()
  const sending = channel({ timeoutMs: 600_000 }).send(['bob'], stop.signal)
  const from = gateway.calls.length
  const abandoned = gateway.abandoned
  while (gateway.calls.length === from) await new Promise((resolve) => setTimeout(resolve, 10))
  stop.abort()
  assert.deepEqual(await sending, { ok: false, retry: false, problem: 'stopped' })
  while (gateway.abandoned === abandoned) await new Promise((resolve) => setTimeout(resolve, 10))
})

test('the secret must be whsec_ and the base64 of 24 to 64 bytes', () => {
  assert.equal(webhookKey(PushGateway.SECRET).length, 32)
  for (const [secret, problem] of [
    [Buffer.alloc(32).toString('base64'), /must start with whsec_/],
    ['whsec_not base64!', /standard base64/],
    ['whsec_AAAA', /24 to 64 bytes/],
    [`whsec_${Buffer.alloc(65).toString('base64')}`, /24 to 64 bytes/],
    [`whsec_${Buffer.alloc(32).toString('base64url')}_`, /standard base64/],
  ] as const) assert.throws(() => webhookKey(secret), problem, secret)
})
