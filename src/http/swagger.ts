import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'

export const OPENAPI_INFO = {
  title: 'MLS Delivery Service',
  description: 'Stores KeyPackages, relays MLS group messages in order and routes them to members. ' +
    'Binary fields are standard base64. Every error answers `{ "error": code, "message": text }`. ' +
    'Live delivery is a WebSocket, which OpenAPI cannot describe: `GET /clients/{client}/stream?after=N` replays the ' +
    "client's queue after N and then streams it; on the same socket the client may send `ack` and `send` frames " +
    '(see the README, section Delivery). Browser pages may open it from the service\'s own origin or one listed in ' +
    'CORS_ORIGINS (403 `forbidden_origin` otherwise).',
  version: '0.1.0',
}

/** The OpenAPI document is generated from the route schemas; Swagger UI serves it at /docs. */
export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
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
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}
