import type { IncomingMessage, ServerResponse } from 'node:http'
import { ERRORS, type ErrorCode } from '../errors.js'

/**
 * Answers a request before it reaches Fastify, in the service's error shape (`{error, message}`
 * and any details), and closes the connection: what follows on it (a body, pipelined requests)
 * is not read. For refusals decided at the level of the connection (host-header.ts,
 * connection-refusal.ts); the caller counts them.
 */
export function answerAndClose(request: IncomingMessage, response: ServerResponse, code: ErrorCode, message: string, details: Readonly<Record<string, unknown>> = {}, headers: Readonly<Record<string, string>> = {}): void {
  const body = JSON.stringify({ error: code, message, ...details })
  response.writeHead(ERRORS[code].status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  })
  response.end(body)
  request.resume()
}
