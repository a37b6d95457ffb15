import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'

/**
 * Fastify's per-request log lines, built only when they can be written: Fastify makes the
 * 'incoming request' and 'request completed' records (and reads the clock) before the logger
 * drops them, on every request. Above `info` on the app's logger (read each time, so a change
 * at run time is followed) they are skipped; errors are always handed to the logger.
 */
export class LevelAwareLogController extends LogController {
  readonly #logger: Pick<Logger, 'isLevelEnabled'>

  constructor(logger: Pick<Logger, 'isLevelEnabled'>) {
    super()
    this.#logger = logger
  }

  override incomingRequest(request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (this.#logger.isLevelEnabled('info')) super.incomingRequest(request, reply, metadata)
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error || this.#logger.isLevelEnabled('info')) super.requestCompleted(error, request, reply, metadata)
  }
}

/**
 * Fastify's `req` log serializer, with a bearer token carried in the query (`access_token`, a
 * WebSocket stream under AUTH=jwt) replaced by `[redacted]`: request lines must not hand out
 * credentials to whoever reads the logs.
 */
export function serializeRequest(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactQueryToken(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  }
}

export function redactQueryToken(url: string): string {
  // The router reads a query after `?` or `#`, and decodes its keys (access%5Ftoken is access_token).
  const start = url.search(/[?#]/)
  if (start < 0) return url
  const params = new URLSearchParams(url.slice(start + 1).replace(/#/g, '&'))
  if (!params.has('access_token')) return url
  params.set('access_token', '[redacted]')
  return `${url.slice(0, start)}?${params.toString().replace('%5Bredacted%5D', '[redacted]')}`
}
