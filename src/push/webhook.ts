import { createHmac } from 'node:crypto'
import type { PushAttempt, PushChannel, PushOutcome } from './notifier.js'

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
 * `webhook-id` (the same on every try of one batch), `webhook-timestamp` (unix seconds) and
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

  async send(clientIds: readonly string[], attempt: PushAttempt, stop: AbortSignal): Promise<PushOutcome> {
    const body = JSON.stringify({ type: 'deliveries', clients: clientIds } satisfies WebhookBody)
    const timestamp = String(Math.floor(this.#now() / 1000))
    const signature = createHmac('sha256', this.#key).update(`${attempt.id}.${timestamp}.${body}`).digest('base64')
    let response: Response
    try {
      response = await fetch(this.#url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'webhook-id': attempt.id,
          'webhook-timestamp': timestamp,
          'webhook-signature': `v1,${signature}`,
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([stop, AbortSignal.timeout(this.#timeoutMs)]),
      })
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause
      return { ok: false, retry: true, problem: (err as Error).name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : `${(err as Error).message}${cause ? `: ${cause.message}` : ''}` }
    }
    // The answer's body is not needed; reading it frees the connection for the next call.
    await response.arrayBuffer().catch(() => undefined)
    if (response.ok) return { ok: true }
    const status = response.status
    const problem = `the push gateway answered ${status}`
    // A gateway that is down, busy or restarting: try again. Anything else (a redirect, 4xx)
    // is a gateway that does not take our calls: another try would be answered the same.
    if (status === 408 || status === 429 || status >= 500) return { ok: false, retry: true, problem, retryAfterMs: retryAfterMs(response.headers.get('retry-after'), this.#now()) }
    return { ok: false, retry: false, problem }
  }
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

/** Retry-After in seconds or as an HTTP date; undefined when absent or unreadable. */
function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null) return undefined
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000
  const at = Date.parse(header)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
