import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { ServiceMetrics } from '../service/metrics.js'
import { answerAndClose } from './plain-answer.js'

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
  const refuse = (request: IncomingMessage, response: ServerResponse, code: 'bad_request' | 'expectation_failed' = 'bad_request', message = MESSAGE) => {
    metrics.rejected('rest', code)
    answerAndClose(request, response, code, message)
  }
  server.removeAllListeners('request')
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    if (!lacksHost(request)) {
      for (const listener of listeners) listener.call(server, request, response)
      return
    }
    refuse(request, response)
  })
  // Node answers `Expect` before a request reaches 'request': without Host, the 400 comes first
  // (no 100 Continue, no 417). With Host, what Node does on its own, the 417 in the error shape.
  server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (lacksHost(request)) return refuse(request, response)
    response.writeContinue()
    server.emit('request', request, response)
  })
  server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) => {
    if (lacksHost(request)) return refuse(request, response)
    // RFC 9110 §10.1.1: 100-continue is the only expectation there is.
    refuse(request, response, 'expectation_failed', `Expect: ${request.headers.expect} is not an expectation this server meets (only 100-continue)`)
  })
}

function lacksHost(request: IncomingMessage): boolean {
  return request.headers.host === undefined && request.httpVersion === '1.1'
}
