import type { FastifyError, FastifyInstance } from 'fastify'
import { ERRORS, isServiceError, type ErrorCode } from '../errors.js'
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
  503: 'unavailable',
}

/**
 * Every error answers `{ error, message }`. Client mistakes keep their status and a message
 * that names the problem; anything else is logged and answered as a bare 500.
 */
export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (isServiceError(err)) {
      return reply.status(err.status).send({ error: err.code, message: err.message, ...err.details })
    }
    if (err.validation && err.validation.length > 0) {
      const part = err.validationContext ?? 'body'
      const data = part === 'body' ? request.body : part === 'querystring' ? request.query : part === 'params' ? request.params : request.headers
      const { code, message } = describeInvalid(err.validation[0] as never, part, data)
      return reply.status(400).send({ error: code, message })
    }
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const code = FASTIFY_CODES[err.code] ?? STATUS_CODES[status] ?? 'bad_request'
      const message = clientErrorMessage(err, code, request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit)
      return reply.status(status).send({ error: code, message })
    }
    if (status === 503) return reply.status(503).send({ error: 'unavailable', message: ERRORS.unavailable.message })
    request.log.error({ err }, 'request failed')
    return reply.status(500).send({ error: 'internal', message: ERRORS.internal.message })
  })

  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ error: 'not_found', message: `Route ${request.method} ${request.url.split('?')[0]} not found` })
  })
}

function clientErrorMessage(err: FastifyError, code: ErrorCode, bodyLimit: number | undefined): string {
  if (err instanceof SyntaxError) return `body is not valid JSON: ${err.message}`
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return 'body is not valid JSON'
  if (code === 'payload_too_large') return `body is larger than the limit of ${bodyLimit} bytes (MAX_MESSAGE_BYTES)`
  if (code === 'unsupported_media_type') return `${err.message}; send application/json (or message/mls where documented)`
  return err.message
}
