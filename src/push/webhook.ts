import { createHmac, randomUUID } from 'node:crypto'
import type { PushChannel, PushOutcome } from './notifier.js'

/** The secret of PUSH_WEBHOOK_SECRET: `whsec_` and the base64 of 24 to 64 random bytes (Standard Webhooks). */
export const WEBHOOK_SECRET_PREFIX = 'whsec_'

export interface WebhookOptions {
  /** PUSH_WEBHOOK_URL: the app's push gateway. */
  readonly url: string
  /** PUSH_WEBHOOK_SECRET, with its `whsec_` prefix. */
  readonly secret: string
  /** A call that has not answered by then is abandoned (and retried). */
  readonly timeoutMs?: number
  /** Injected for tests; unix milliseconds. */
  readonly now?: () => number
}

export const WEBHOOK_TIMEOUT_MS = 10_000

/** The body of a webhook call: which clients have new deliveries (never what they are). */
export interface WebhookBody {
  readonly type: 'deliveries'
  readonly clients: readonly string[]
}

/**
 * Tells the app's push gateway (PUSH_WEBHOOK_URL) which clients have new deliveries, as a
 * signed POST in the Standard Webhooks form (https://www.standardwebhooks.com): headers
 * `webhook-id` (one per call), `webhook-timestamp` (unix seconds) and
 * `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of `<id>.<timestamp>.<body>` under
 * the secret's bytes). The gateway verifies it with any Standard Webhooks library, maps client
 * ids to device tokens and wakes the devices through APNs, FCM or Web Push.
 */
export class WebhookChannel implements PushChannel {
  readonly #url: string
  readonly #key: Buffer
  readonly #timeoutMs: number
  readonly #now: () => number

  constructor(options: WebhookOptions) {
    this.#url = options.url
    this.#key = webhookKey(options.secret)
    this.#timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS
    this.#now = options.now ?? Date.now
  }

  async send(clientIds: readonly string[], stop: AbortSignal): Promise<PushOutcome> {
    if (stop.aborted) return { ok: false, retry: false, problem: 'stopped' }
    const id = `msg_${randomUUID()}`
    const body = JSON.stringify({ type: 'deliveries', clients: clientIds } satisfies WebhookBody)
    const timestamp = String(Math.floor(this.#now() / 1000))
    const signature = createHmac('sha256', this.#key).update(`${id}.${timestamp}.${body}`).digest('base64')
    // One controller per call (AbortSignal.any keeps every signal it joins alive on Node 20).
    const call = new AbortController()
    const timer = setTimeout(() => call.abort(TIMED_OUT), this.#timeoutMs)
    const stopped = () => call.abort(STOPPED)
    stop.addEventListener('abort', stopped, { once: true })
    try {
      const response = await fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` },
        body,
        redirect: 'manual',
        signal: call.signal,
      })
      // The answer's body is not needed: dropping it frees the connection without reading it.
      await response.body?.cancel().catch(() => undefined)
      if (response.ok) return { ok: true }
      const status = response.status
      const problem = `the push gateway answered ${status}`
      if (status === 413) return { ok: false, retry: false, tooLarge: true, problem }
      // A gateway that is down, busy or restarting: try again. Anything else (a redirect, 4xx)
      // is a gateway that does not take our calls: another try would be answered the same.
      if (status === 408 || status === 429 || status >= 500) return { ok: false, retry: true, problem, retryAfterMs: retryAfterMs(response.headers.get('retry-after'), this.#now()) }
      return { ok: false, retry: false, problem }
    } catch (err) {
      if (call.signal.aborted) return call.signal.reason === STOPPED ? { ok: false, retry: false, problem: 'stopped' } : { ok: false, retry: true, problem: `no answer within ${this.#timeoutMs} ms` }
      return { ok: false, retry: true, problem: networkProblem(err) }
    } finally {
      clearTimeout(timer)
      stop.removeEventListener('abort', stopped)
    }
  }
}

const TIMED_OUT = 'timed out'
const STOPPED = 'stopped'

/**
 * What failed, without the URL (undici puts it in some messages, and it may hold a token): the
 * error code of the cause (ECONNREFUSED, ENOTFOUND, a TLS error), else its name.
 */
function networkProblem(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; name?: unknown } }).cause
  const code = typeof cause?.code === 'string' ? cause.code : typeof cause?.name === 'string' ? cause.name : (err as Error).name
  return `the push gateway cannot be reached (${code})`
}

/** The HMAC key of a `whsec_` secret; throws when it is not one. */
export function webhookKey(secret: string): Buffer {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) throw new Error(`must start with ${WEBHOOK_SECRET_PREFIX} (e.g. whsec_$(openssl rand -base64 32))`)
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length)
  const key = Buffer.from(encoded, 'base64')
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || key.toString('base64') !== encoded) throw new Error(`the part after ${WEBHOOK_SECRET_PREFIX} must be standard base64 (with padding)`)
  if (key.length < 24 || key.length > 64) throw new Error(`must hold 24 to 64 bytes after ${WEBHOOK_SECRET_PREFIX} (it holds ${key.length}; e.g. whsec_$(openssl rand -base64 32))`)
  return key
}

/** Retry-After as whole seconds or an HTTP date (IMF-fixdate, RFC 9110 §5.6.7); undefined otherwise. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined
  const value = header.trim()
  if (/^\d{1,9}$/.test(value)) return Number(value) * 1000
  if (!/^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(value)) return undefined
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
