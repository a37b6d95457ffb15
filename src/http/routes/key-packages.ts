import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ServiceError } from '../../errors.js'
import { ClientParamsSchema, errorResponses } from '../../schemas/common.js'
import {
  KeyPackageListReplySchema,
  KeyPackageReplySchema,
  StoreKeyPackagesBodySchema,
  StoreKeyPackagesReplySchema,
} from '../../schemas/key-packages.js'
import { keyPackageView, toBase64 } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'

const tags = ['key-packages']

export const keyPackageRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService }> = async (app, { service }) => {
  app.put('/key-packages/:client', {
    schema: {
      summary: 'Store KeyPackages for a client',
      description: 'JSON with `key_package` (one, base64) or `key_packages` (a batch), or the raw bytes of one KeyPackage with `Content-Type: message/mls`.',
      tags,
      params: ClientParamsSchema,
      body: {
        content: {
          'application/json': { schema: StoreKeyPackagesBodySchema },
          'message/mls': { schema: Type.String({ format: 'binary', description: 'The raw bytes of one KeyPackage' }) },
        },
      } as never,
      response: { 200: StoreKeyPackagesReplySchema, ...errorResponses(400, 413, 415) },
    },
  }, async (request) => {
    const packages = Buffer.isBuffer(request.body) ? [request.body] : jsonKeyPackages(request.body as Record<string, unknown>)
    const result = await service.storeKeyPackages(request.params.client, packages)
    return { client_id: result.clientId, stored: result.stored, available: result.available }
  })

  app.get('/key-packages/:client', {
    schema: {
      summary: 'Fetch one KeyPackage of a client',
      tags,
      params: ClientParamsSchema,
      response: { 200: KeyPackageReplySchema, ...errorResponses(400, 404) },
    },
  }, async (request) => {
    const { client } = request.params
    const record = await service.fetchKeyPackage(client)
    if (!record) throw new ServiceError('key_package_not_found', `No KeyPackage available for client: ${client}`)
    return keyPackageView(client, record, toBase64)
  })

  app.get('/key-packages', {
    schema: {
      summary: 'List the clients that have KeyPackages',
      tags,
      response: { 200: KeyPackageListReplySchema },
    },
  }, async () => ({ clients: await service.listKeyPackageClients() }))

  app.delete('/key-packages/:client', {
    schema: {
      summary: 'Delete all KeyPackages of a client',
      tags,
      params: ClientParamsSchema,
      response: { 204: Type.Null({ description: 'Deleted (also when there were none)' }), ...errorResponses(400) },
    },
  }, async (request, reply) => {
    await service.deleteKeyPackages(request.params.client)
    return reply.status(204).send(null)
  })
}

function jsonKeyPackages(body: Record<string, unknown>): Buffer[] {
  const one = body.key_package
  const many = body.key_packages
  if ((one === undefined) === (many === undefined)) {
    throw new ServiceError('bad_request', "body must have exactly one of 'key_package' (base64) or 'key_packages' (array of base64)")
  }
  const list = one !== undefined ? [one as string] : (many as string[])
  return list.map((b64) => Buffer.from(b64, 'base64'))
}
