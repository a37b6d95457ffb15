import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { ConnectionGate } from '../connection-gate.js'
import type { ServiceMetrics } from '../service/metrics.js'
import { answerAndClose } from './plain-answer.js'

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void

/** Answered even on a refused connection: probes and scrapes matter most when the instance is full. */
const OPERATIONS_PATHS = new Set(['/health', '/ready', '/metrics'])

/**
 * The REST door's side of the connection limits (connection-gate.ts): the first request on a
 * refused connection is answered with the refusal, 503 `unavailable` or 429 `rate_limited`, with
 * `retry_after` and `Retry-After`, and the connection is closed. An HTTP client can read an answer
 * only to a request it sent, and over HTTPS only after the handshake, so the door waits for it
 * (at most REFUSED_GRACE_MS). A liveness or readiness probe or a metrics scrape is answered as
 * usual instead, then the connection closed. A request with `Expect` gets the refusal, without a
 * 100 Continue or a 417. Wrap after `requireHostHeader` and before `serveInOrder`; a request for the
 * stream is brought here by the upgrade gate.
 */
export function answerRefusedConnections(server: Server, gate: ConnectionGate, metrics: Pick<ServiceMetrics, 'rejected'>, corsOrigins: readonly string[] = []): void {
  for (const event of ['request', 'checkContinue', 'checkExpectation'] as const) {
    const listeners = server.listeners(event) as RequestListener[]
    if (event === 'request' && listeners.length === 0) throw new Error('answerRefusedConnections: the server has no request listener yet')
    server.removeAllListeners(event)
    server.on(event, (request: IncomingMessage, response: ServerResponse) => {
      const refusal = gate.refusalOf(request.socket)
      if (refusal !== undefined) {
        if (!OPERATIONS_PATHS.has(pathOf(request.url))) {
          metrics.rejected('rest', refusal.code)
          answerAndClose(request, response, refusal.code, refusal.message, { retry_after: refusal.retryAfterSeconds }, { 'retry-after': String(refusal.retryAfterSeconds), ...corsHeaders(corsOrigins, request.headers.origin) })
          return
        }
        response.setHeader('connection', 'close')
      }
      if (listeners.length === 0) return answerAsNode(server, event, request, response)
      for (const listener of listeners) listener.call(server, request, response)
    })
  }
}

/**
 * The refusal is answered outside Fastify, so without its CORS plugin: a page of an origin in
 * CORS_ORIGINS may still read it (and when to retry), as it reads every other error.
 */
function corsHeaders(origins: readonly string[], origin: string | undefined): Record<string, string> {
  const exposed = { 'access-control-expose-headers': 'retry-after' }
  if (origins.includes('*')) return { 'access-control-allow-origin': '*', ...exposed }
  if (origin === undefined || !origins.includes(origin)) return {}
  return { 'access-control-allow-origin': origin, vary: 'Origin', ...exposed }
}

/** What Node does for an event nobody listens to: 100 Continue and on, or 417. */
function answerAsNode(server: Server, event: 'request' | 'checkContinue' | 'checkExpectation', request: IncomingMessage, response: ServerResponse): void {
  if (event === 'checkContinue') {
    response.writeContinue()
    server.emit('request', request, response)
  } else {
    response.writeHead(417)
    response.end()
  }
}

function pathOf(url: string | undefined): string {
  const path = url ?? ''
  const query = path.indexOf('?')
  return query === -1 ? path : path.slice(0, query)
}
