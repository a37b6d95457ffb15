import type { Duplex } from 'node:stream'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ERRORS, isServiceError, ServiceError, type ErrorCode } from '../errors.js'
import { MAX_ID_LENGTH } from '../service/ids.js'
import type { ServiceMetrics } from '../service/metrics.js'
import { pendingResponse, whenAnswered } from './request-order.js'
import { describeInvalid } from './validation.js'

/** Fastify's own error codes that are a client's mistake, mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'bad_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'bad_request',
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
}

/**
 * Every error answers `{ error, message }`. Client mistakes keep their status and a message
 * that names the problem; anything else is logged and answered as a bare 500. Each is counted
 * (mlsds_requests_rejected_total, door "rest").
 */
export function registerErrorHandlers(app: FastifyInstance, metrics: Pick<ServiceMetrics, 'rejected'>): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const answer = (status: number, body: { error: string; message: string }) => {
      metrics.rejected('rest', body.error)
      return reply.status(status).send(body)
    }
    if (isServiceError(err)) {
      // RFC 9110 §10.2.3: a 429 says when to come back, in the header as in the body.
      if (typeof err.details.retry_after === 'number') void reply.header('retry-after', String(err.details.retry_after))
      return answer(err.status, { error: err.code, message: err.message, ...err.details })
    }
    if (err.validation && err.validation.length > 0) {
      const part = err.validationContext ?? 'body'
      const data = part === 'body' ? request.body : part === 'querystring' ? request.query : part === 'params' ? request.params : request.headers
      const { code, message } = describeInvalid(err.validation[0] as never, part, data)
      return answer(400, { error: code, message })
    }
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[err.code] ?? STATUS_CODES[status] ?? 'bad_request'
      const message = clientErrorMessage(err, code, request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit)
      return answer(status, { error: code, message })
    }
    if (status === 503) return answer(503, { error: 'unavailable', message: ERRORS.unavailable.message })
    request.log.error({ err }, 'request failed')
    return answer(500, { error: 'internal', message: ERRORS.internal.message })
  })

  // A known path asked with another method is a 405 that lists the methods it takes (RFC 9110 §15.5.6).
  const routes: { pattern: RegExp; methods: readonly string[] }[] = []
  app.addHook('onRoute', (route) => {
    const url = route.url ?? route.path
    // A catch-all (CORS's `OPTIONS *`) does not make every path a known one.
    if (url === '*' || url === '/*') return
    routes.push({ pattern: routePattern(url), methods: ([] as string[]).concat(route.method) })
  })
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))].sort()
    if (allowed.length > 0 && request.method === 'OPTIONS') {
      // RFC 9110 §9.3.7: what the path takes. (Without CORS_ORIGINS a browser preflight stops here.)
      return reply.header('allow', [...allowed, 'OPTIONS'].join(', ')).status(204).send()
    }
    if (allowed.length > 0) {
      metrics.rejected('rest', 'method_not_allowed')
      void reply.header('allow', allowed.join(', '))
      return reply.status(405).send({ error: 'method_not_allowed', message: `${path} takes ${allowed.join(', ')}, not ${request.method}` })
    }
    metrics.rejected('rest', 'not_found')
    return reply.status(404).send({ error: 'not_found', message: `Route ${request.method} ${path} not found` })
  })
}

/** A route's path (`/groups/:group/messages`) as a regular expression over request paths. */
function routePattern(url: string): RegExp {
  const source = url.split('/').map((segment) => (segment.startsWith(':') ? '[^/]+' : segment === '*' ? '.*' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')
  return new RegExp(`^${source}$`)
}

function clientErrorMessage(err: FastifyError, code: ErrorCode, bodyLimit: number | undefined): string {
  if (err instanceof SyntaxError) return `body is not valid JSON: ${err.message}`
  if (code === 'payload_too_large') return `body is larger than the limit of ${bodyLimit} bytes (MAX_MESSAGE_BYTES)`
  if (code === 'unsupported_media_type') return `${err.message}; send application/json (or message/mls where documented)`
  return err.message
}

/** A body Fastify's JSON parser refused: a syntax error (with the parser's words), or a prototype key. */
export function invalidJson(body: string): ServiceError {
  try {
    JSON.parse(body)
  } catch (err) {
    return new ServiceError('bad_request', `body is not valid JSON: ${(err as Error).message}`)
  }
  return new ServiceError('bad_request', 'body has a "__proto__" key, or "constructor" with "prototype": refused, as a way to pollute prototypes')
}

/**
 * Fastify's `frameworkErrors`: what it refuses before any route or error handler runs, answered in
 * our shape instead of Fastify's, and counted. A path that is not valid percent-encoded UTF-8, or
 * a path segment longer than Fastify reads as a parameter (far beyond any id), is the client's mistake.
 */
export function frameworkErrors(metrics: Pick<ServiceMetrics, 'rejected'>) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    switch (error.code) {
      case 'FST_ERR_BAD_URL':
        metrics.rejected('rest', 'bad_request')
        void reply.status(400).send({ error: 'bad_request', message: `the path is not valid percent-encoded UTF-8: ${request.raw.url?.split('?')[0] ?? ''}` })
        return
      case 'FST_ERR_MAX_PARAM_LENGTH':
        metrics.rejected('rest', 'bad_request')
        void reply.status(400).send({ error: 'bad_request', message: `a path segment is longer than any id can be (${MAX_ID_LENGTH} characters)` })
        return
      default:
        metrics.rejected('rest', 'internal')
        request.log.error({ err: error }, 'request failed before routing')
        void reply.status(500).send({ error: 'internal', message: ERRORS.internal.message })
    }
  }
}

/**
 * Fastify's `clientErrorHandler`: a request Node's HTTP parser refuses (malformed, headers too
 * large, or not complete within HTTP_REQUEST_TIMEOUT), answered in our shape and counted, after
 * the answers to the requests before it on the connection (a good request followed by garbage
 * still gets its own answer), and then the connection is closed: its place in the stream is lost.
 */
export function clientErrorHandler(metrics: Pick<ServiceMetrics, 'rejected'>) {
  return (err: NodeJS.ErrnoException & { reason?: string }, socket: Duplex): void => {
    // A reset connection, or one already gone: nobody to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    // HTTPS: a TLS handshake that failed or never finished (ERR_TLS_HANDSHAKE_TIMEOUT) is no
    // request, and an answer in clear could not be read: the connection just goes.
    if (err.code?.startsWith('ERR_TLS_') || err.code?.startsWith('ERR_SSL_')) {
      socket.destroy()
      return
    }
    const code: ErrorCode = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request_timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? 'headers_too_large' : 'bad_request'
    const message = code === 'request_timeout'
      ? 'the request did not arrive in full within HTTP_REQUEST_TIMEOUT'
      : code === 'headers_too_large'
        ? 'the request\'s headers are larger than the server reads'
        : `malformed HTTP request: ${err.reason ?? err.message}${err.code ? ` (${err.code})` : ''}`
    metrics.rejected('rest', code)
    const body = JSON.stringify({ error: code, message })
    const answer = () => {
      // Not while another response is half written: then only closing is left.
      const writing = pendingResponse(socket)
      if (!socket.writable || writing?.headersSent) {
        socket.destroy()
        return
      }
      const { status } = ERRORS[code]
      socket.end(`HTTP/1.1 ${status} ${ERRORS[code].message}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
      // A peer that never reads its answer does not keep the socket.
      setTimeout(() => socket.destroy(), 2000).unref()
    }
    // When the request still being received is the one that failed (a body that never came, a bad
    // chunk), its handler waits for the rest: answer now. Otherwise the failure comes after whole
    // requests, whose answers go first.
    if (pendingResponse(socket)?.req.complete === false) answer()
    else whenAnswered(socket, answer)
  }
}
