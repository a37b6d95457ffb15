import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ServiceError } from '../../errors.js'
import { ClientParamsSchema, errorResponses } from '../../schemas/common.js'
import type { ValidationMode } from '../../config.js'
import {
  ClaimQuerySchema,
  KeyPackageCountReplySchema,
  KeyPackageListQuerySchema,
  KeyPackageListReplySchema,
  KeyPackageRefParamsSchema,
  KeyPackageReplySchema,
  StoreKeyPackagesBodySchema,
  StoreKeyPackagesReplySchema,
} from '../../schemas/key-packages.js'
import { fromBase64 } from '../../schemas/base64.js'
import { keyPackageCountView, keyPackageView, toBase64 } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'
import type { AccessPolicy } from '../../auth/access-policy.js'

const tags = ['key-packages']

export const keyPackageRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService; validation: ValidationMode; access: AccessPolicy }> = async (app, { service, validation, access }) => {
  app.put('/key-packages/:client', {
    schema: {
      summary: "Add KeyPackages to a client's pool",
      description: 'JSON with `key_package` (one, base64) or `key_packages` (a batch), or the raw bytes of one KeyPackage with `Content-Type: message/mls`. ' +
        'Each is validated (complete decoding, version, allowed ciphersuite, both signatures, lifetime); one bad KeyPackage rejects the batch ' +
        'with 400 `invalid_key_package` and a `check` naming the failed check. Bytes that are not MLS at all are refused under MLS_VALIDATION=strict ' +
        'and kept as one opaque legacy KeyPackage (replaced on store, never consumed) under permissive.',
      tags,
      params: ClientParamsSchema,
      body: {
        content: {
          'application/json': { schema: StoreKeyPackagesBodySchema },
          'message/mls': { schema: Type.String({ format: 'binary', description: 'The raw bytes of one KeyPackage' }) },
        },
      } as never,
      response: { 200: StoreKeyPackagesReplySchema, ...errorResponses(400, 403, 413, 415) },
    },
  }, async (request) => {
    access.self(request.caller, request.params.client, 'add KeyPackages to its pool')
    // A raw body may be a view into a larger socket buffer: keep a copy of its own.
    const packages = Buffer.isBuffer(request.body) ? [new Uint8Array(request.body)] : jsonKeyPackages(request.body as Record<string, unknown>)
    const result = await service.storeKeyPackages(request.params.client, packages, { validation })
    return { client_id: result.clientId, stored: result.stored, available: result.available }
  })

  app.get('/key-packages/:client', {
    // A claim takes a KeyPackage: HEAD, which must change nothing, is a 405 rather than a claim without its answer.
    exposeHeadRoute: false,
    schema: {
      summary: 'Claim one KeyPackage of a client',
      description: 'Hands out one KeyPackage and removes it, atomically: two claims never get the same one. A last-resort KeyPackage ' +
        'is handed out only when no other is left, and kept. Expired ones are never handed out. The bytes are exactly those uploaded. ' +
        "Claims of one client's KeyPackages are limited per window (KEY_PACKAGE_CLAIM_LIMIT, 20 a minute by default): beyond it, no " +
        'one-time KeyPackage is handed out, only the last-resort one; without one, 429 `rate_limited` with `retry_after` (seconds, also in ' +
        'Retry-After). A client with no KeyPackage to hold back is a 404 beyond the limit too.',
      tags,
      params: ClientParamsSchema,
      querystring: ClaimQuerySchema,
      response: { 200: KeyPackageReplySchema, ...errorResponses(400, 404, 429) },
    },
  }, async (request) => {
    const { client } = request.params
    const record = await service.fetchKeyPackage(client, { ciphersuite: request.query.ciphersuite })
    if (!record) throw new ServiceError('key_package_not_found', `No KeyPackage available for client: ${client}`)
    return keyPackageView(client, record, toBase64)
  })

  app.get('/key-packages/:client/count', {
    schema: {
      summary: 'How many KeyPackages a client has available, by ciphersuite',
      tags,
      params: ClientParamsSchema,
      response: { 200: KeyPackageCountReplySchema, ...errorResponses(400, 403) },
    },
  }, async (request) => {
    access.self(request.caller, request.params.client, 'count its KeyPackages')
    return keyPackageCountView(request.params.client, await service.countKeyPackages(request.params.client))
  })

  app.delete('/key-packages/:client/:ref', {
    schema: {
      summary: 'Delete one KeyPackage of a client by its ref',
      tags,
      params: KeyPackageRefParamsSchema,
      response: { 204: Type.Null({ description: 'Deleted' }), ...errorResponses(400, 403, 404) },
    },
  }, async (request, reply) => {
    access.self(request.caller, request.params.client, 'delete its KeyPackages')
    await service.deleteKeyPackage(request.params.client, request.params.ref)
    return reply.status(204).send(null)
  })

  app.get('/key-packages', {
    schema: {
      summary: 'List the clients that have KeyPackages, a page at a time',
      description: 'In code point order; when `next_after` is in the reply, more follow: ask again with `after` set to it.',
      tags,
      querystring: KeyPackageListQuerySchema,
      response: { 200: KeyPackageListReplySchema, ...errorResponses(400) },
    },
  }, async (request) => {
    const page = await service.listKeyPackageClients({ after: request.query.after, limit: request.query.limit })
    return { clients: page.clients, ...(page.nextAfter === undefined ? {} : { next_after: page.nextAfter }) }
  })

  app.delete('/key-packages/:client', {
    schema: {
      summary: 'Delete all KeyPackages of a client',
      tags,
      params: ClientParamsSchema,
      response: { 204: Type.Null({ description: 'Deleted (also when there were none)' }), ...errorResponses(400, 403) },
    },
  }, async (request, reply) => {
    access.self(request.caller, request.params.client, 'delete its KeyPackages')
    await service.deleteKeyPackages(request.params.client)
    return reply.status(204).send(null)
  })
}

function jsonKeyPackages(body: Record<string, unknown>): Uint8Array[] {
  const one = body.key_package
  const many = body.key_packages
  if ((one === undefined) === (many === undefined)) {
    throw new ServiceError('bad_request', "body must have exactly one of 'key_package' (base64) or 'key_packages' (array of base64)")
  }
  const list = one !== undefined ? [one as string] : (many as string[])
  return list.map(fromBase64)
}
