import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errorResponse } from '../../schemas/common.js'
import type { DeliveryService } from '../../service/delivery-service.js'

const StoreField = Type.String({ description: 'The storage backend: memory, postgres or sqlite' })

export const healthRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService }> = async (app, { service }) => {
  app.get('/health', {
    schema: {
      summary: 'Liveness: the process is up and answering (it does not touch the database)',
      tags: ['operations'],
      response: { 200: Type.Object({ status: Type.Literal('ok'), store: StoreField }) },
    },
  }, async () => ({ status: 'ok' as const, store: service.storeKind }))

  app.get('/ready', {
    schema: {
      summary: 'Readiness: the store answers; 503 while the database is unreachable',
      tags: ['operations'],
      response: { 200: Type.Object({ status: Type.Literal('ready'), store: StoreField }), 503: errorResponse(503) },
    },
  }, async () => {
    await service.ping()
    return { status: 'ready' as const, store: service.storeKind }
  })
}
