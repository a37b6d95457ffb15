import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { ERRORS } from '../errors.js'
import type { ServiceMetrics } from '../service/metrics.js'

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void

const MESSAGE = 'an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)'

/**
 * RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without Host. Node does that itself
 * (`requireHostHeader`) with an empty 400 a client cannot tell from any other; the server is built
 * with that check off (app.ts), and this answers in the service's shape instead: a JSON
 * `bad_request` that says what is missing, counted like every refusal, and the connection closed.
 * HTTP/1.0 requests need no Host. Wrap before `serveInOrder`, so the answer keeps its place
 * among pipelined ones.
 */
export function requireHostHeader(server: Server, metrics: Pick<ServiceMetrics, 'rejected'>): void {
  const listeners = server.listeners('request') as RequestListener[]
  if (listeners.length === 0) throw new Error('requireHostHeader: the server has no request listener yet')
  server.removeAllListeners('request')
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    if (request.headers.host !== undefined || request.httpVersion !== '1.1') {
      for (const listener of listeners) listener.call(server, request, response)
      return
    }
    metrics.rejected('rest', 'bad_request')
    const body = JSON.stringify({ error: 'bad_request', message: MESSAGE })
    response.writeHead(ERRORS.bad_request.status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    })
    response.end(body)
    // Whatever follows on the connection (a body, pipelined requests) is not read.
    request.resume()
  })
}
