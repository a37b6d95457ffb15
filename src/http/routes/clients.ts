import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ClientParamsSchema, errorResponses } from '../../schemas/common.js'
import { PageQuerySchema, WelcomesReplySchema } from '../../schemas/messages.js'
import { toBase64, welcomeView } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'

export const clientRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService }> = async (app, { service }) => {
  app.get('/clients/:client/welcomes', {
    schema: {
      summary: 'Read the Welcomes routed to a client, after a seq of its inbox',
      tags: ['clients'],
      params: ClientParamsSchema,
      querystring: PageQuerySchema,
      response: { 200: WelcomesReplySchema, ...errorResponses(400) },
    },
  }, async (request) => {
    const { client } = request.params
    const welcomes = await service.readWelcomes(client, request.query.after, request.query.limit)
    return { client_id: client, welcomes: welcomes.map((w) => welcomeView(w, toBase64)) }
  })
}
