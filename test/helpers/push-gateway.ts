import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

/** One call the gateway received, verified with the Standard Webhooks library (as a real gateway would). */
export interface GatewayCall {
  readonly id: string
  readonly timestamp: number
  readonly clients: readonly string[]
  readonly body: unknown
  readonly verified: boolean
  readonly at: number
}

/** How the gateway answers a call: a status (and headers), or `hang` (never answers). */
export type GatewayAnswer = { readonly status: number; readonly headers?: Record<string, string> } | 'hang'

/**
 * An app's push gateway on a free port of 127.0.0.1: it checks each call's signature with the
 * `standardwebhooks` package and keeps the calls. Answers 204 unless told otherwise.
 */
export class PushGateway {
  static readonly SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`
  readonly calls: GatewayCall[] = []
  /** Calls whose caller went away before they were answered. */
  abandoned = 0
  readonly #server: http.Server
  readonly #webhook = new Webhook(PushGateway.SECRET)
  #answers: GatewayAnswer[] = []
  #waiters: Array<() => void> = []

  private constructor(server: http.Server) {
    this.#server = server
  }

  static async start(): Promise<PushGateway> {
    const server = http.createServer()
    const gateway = new PushGateway(server)
    server.on('request', (req, res) => void gateway.#handle(req, res))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    return gateway
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/mls/deliveries`
  }

  /** The next calls are answered these ways, in order (then 204 again). */
  answerNext(...answers: GatewayAnswer[]): void {
    this.#answers.push(...answers)
  }

  /** Resolves once `count` calls have come in; fails after `ms`. */
  async waitForCalls(count: number, ms = 5000): Promise<GatewayCall[]> {
    const deadline = Date.now() + ms
    while (this.calls.length < count) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`the gateway got ${this.calls.length} calls, not ${count}: ${JSON.stringify(this.calls.map((c) => c.clients))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.calls
  }

  /** Every client told so far, in order, each as often as it was told. */
  get told(): string[] {
    return this.calls.flatMap((c) => c.clients)
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections()
    this.#server.close()
    await once(this.#server, 'close')
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const text = Buffer.concat(chunks).toString('utf8')
    const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) }
    let verified = false
    let body: unknown
    try {
      body = this.#webhook.verify(text, headers)
      verified = true
    } catch {
      body = JSON.parse(text)
    }
    this.calls.push({ id: headers['webhook-id'], timestamp: Number(headers['webhook-timestamp']), clients: (body as { clients: string[] }).clients, body, verified, at: Date.now() })
    for (const wake of this.#waiters.splice(0)) wake()
    const answer = this.#answers.shift() ?? { status: 204 }
    if (answer === 'hang') {
      res.once('close', () => this.abandoned++)
      return
    }
    res.writeHead(answer.status, answer.headers).end()
  }
}
