import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Caller, TokenVerifier } from '../auth/token-verifier.js'
import { ServiceError } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the request's bearer token speaks for (AUTH=jwt); null without authentication. */
    caller: Caller | null
  }
}

/** RFC 6750 §3: the scheme (and realm) a 401 asks for. */
const REALM = 'Bearer realm="mls-delivery-service"'
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i

export interface BearerTokenOptions {
  /** Routes (as declared, e.g. /clients/:client/stream) that also take the token as `?access_token=`. */
  readonly queryTokenRoutes: ReadonlySet<string>
}

/**
 * AUTH=jwt: every route of `app`'s scope needs `Authorization: Bearer <JWT>` (RFC 6750 §2.1).
 * WebSocket streams may carry it as `?access_token=` (§2.3) instead, since a browser cannot set
 * headers on a WebSocket. The verified caller is `request.caller`; what it may do is the
 * AccessPolicy's to say. A missing or bad token is 401 `unauthenticated` with `WWW-Authenticate`.
 */
export function requireBearerTokens(app: FastifyInstance, verifier: TokenVerifier, options: BearerTokenOptions): void {
  app.decorateRequest('caller', null)
  // preParsing: after every onRequest hook (a WebSocket handshake must have been taken by
  // @fastify/websocket's, or a refused one would leave its socket open), before a body is read.
  app.addHook('preParsing', async (request: FastifyRequest, reply: FastifyReply, payload) => {
    try {
      const token = bearerToken(request, options.queryTokenRoutes)
      if (token === undefined) {
        // §3.1: a request with no credentials gets no error code, only the challenge.
        void reply.header('www-authenticate', REALM)
        throw new ServiceError('unauthenticated', 'this route needs a bearer token: send Authorization: Bearer <JWT>')
      }
      request.caller = await verifier.verify(token)
    } catch (err) {
      if (err instanceof ServiceError && err.code === 'unauthenticated' && !reply.hasHeader('www-authenticate')) {
        void reply.header('www-authenticate', `${REALM}, error="invalid_token", error_description="${err.message.replace(/["\\]/g, '')}"`)
      }
      throw err
    }
    return payload
  })
}

/** The token the request carries, if any; undefined when it carries none. */
function bearerToken(request: FastifyRequest, queryTokenRoutes: ReadonlySet<string>): string | undefined {
  const header = request.headers.authorization
  if (header !== undefined) {
    const match = BEARER.exec(header)
    if (!match) throw new ServiceError('unauthenticated', 'the Authorization header must be "Bearer <JWT>"')
    return match[1]
  }
  if (queryTokenRoutes.has(request.routeOptions.url ?? '')) {
    const token = (request.query as Record<string, unknown> | undefined)?.access_token
    if (typeof token === 'string' && token !== '') return token
  }
  return undefined
}
