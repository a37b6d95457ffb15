import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ERRORS, isServiceError, type ErrorCode } from '../errors.js'
import { MAX_ID_LENGTH } from '../service/ids.js'
import type { ServiceMetrics } from '../service/metrics.js'
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

  app.setNotFoundHandler((request, reply) => {
    metrics.rejected('rest', 'not_found')
    reply.status(404).send({ error: 'not_found', message: `Route ${request.method} ${request.url.split('?')[0]} not found` })
  })
}

function clientErrorMessage(err: FastifyError, code: ErrorCode, bodyLimit: number | undefined): string {
  if (err instanceof SyntaxError) return `body is not valid JSON: ${err.message}`
  // Fastify's parser refuses prototype keys as invalid JSON without saying which it was.
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return 'body is not valid JSON (a "__proto__" key, or "constructor" with "prototype", is refused as such)'
  if (code === 'payload_too_large') return `body is larger than the limit of ${bodyLimit} bytes (MAX_MESSAGE_BYTES)`
  if (code === 'unsupported_media_type') return `${err.message}; send application/json (or message/mls where documented)`
  return err.message
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
