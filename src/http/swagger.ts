import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifySchema } from 'fastify'

export const OPENAPI_INFO = {
  title: 'MLS Delivery Service',
  description: 'Stores KeyPackages, relays MLS group messages in order and routes them to members. ' +
    'Binary fields are standard base64. Every error answers `{ "error": code, "message": text }`. ' +
    'Live delivery is a WebSocket, which OpenAPI cannot describe: `GET /clients/{client}/stream?after=N` replays the ' +
    "client's queue after N and then streams it; on the same socket the client may send `ack` and `send` frames " +
    '(see the README, section Delivery). Browser pages may open it from the service\'s own origin or one listed in ' +
    'CORS_ORIGINS (403 `forbidden_origin` otherwise). ' +
    'A service run with AUTH=jwt needs `Authorization: Bearer <JWT>` on every route but health, readiness, metrics and the docs ' +
    '(401 `unauthenticated` without a valid one): the token\'s `sub` is the client it acts as, which may act only as itself and ' +
    'read a group only while a member (403 `forbidden`). Without AUTH=jwt no token is needed and one sent is ignored. ' +
    'A connection beyond the connection limits has its request answered 503 `unavailable` (MAX_CONNECTIONS) or 429 `rate_limited` ' +
    '(MAX_CONNECTIONS_PER_IP, CONNECTION_RATE_LIMIT), with `retry_after` and Retry-After, and is closed; health, readiness and metrics are answered on it as usual.',
  version: '0.1.0',
}

/** The OpenAPI document is generated from the route schemas; Swagger UI serves it at /docs. */
export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    transform: optionalDefaults,
    openapi: {
      openapi: '3.1.0',
      info: OPENAPI_INFO,
      tags: [
        { name: 'key-packages', description: 'KeyPackages: one-time join keys of clients' },
        { name: 'groups', description: 'Groups and their members' },
        { name: 'messages', description: 'Relaying and reading group messages; commit bundles' },
        { name: 'clients', description: 'What is routed to one client (Welcomes)' },
        { name: 'operations', description: 'Health and documentation' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'AUTH=jwt: a JWT whose sub is the client id it acts as (RFC 6750)' },
        },
      },
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}

/**
 * A query parameter with a default may be left out (the validator fills the default in), yet
 * TypeBox lists it as required: the document says it is not, so generated clients do not force it.
 */
function optionalDefaults({ schema, url }: { schema: FastifySchema; url: string }): { schema: FastifySchema; url: string } {
  const query = schema?.querystring as { properties?: Record<string, { default?: unknown }>; required?: string[] } | undefined
  if (!query?.properties || !query.required) return { schema, url }
  const required = query.required.filter((name) => query.properties![name]?.default === undefined)
  return { schema: { ...schema, querystring: { ...query, required } }, url }
}

/** RFC 6750 bearer tokens, needed when the service runs with AUTH=jwt (and optional otherwise). */
export const API_SECURITY = [{ bearerAuth: [] }, {}]

/** Marks every route `app` adds from now on as taking the bearer token, in the OpenAPI document. */
export function documentBearerAuth(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (route.schema && !route.schema.hide) route.schema = { ...route.schema, security: API_SECURITY } as typeof route.schema
  })
}
