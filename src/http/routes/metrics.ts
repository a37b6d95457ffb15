import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { DeliveryService } from '../../service/delivery-service.js'

export const metricsRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService }> = async (app, { service }) => {
  app.get('/metrics', {
    schema: {
      summary: 'Counters of this instance in the Prometheus text format (METRICS=false turns it off)',
      description: 'Messages accepted by MLS content type (`mlsds_messages_accepted_total`), retries answered with the original seq, ' +
        'deliveries queued, KeyPackages stored and claimed by outcome, groups created and deleted, requests rejected by door ' +
        '(rest, tcp, stream) and error code, live streams, and the process (CPU, memory, event-loop delay, GC). ' +
        'Each instance counts its own requests: sum them across instances.',
      tags: ['operations'],
      response: {
        200: {
          description: 'Prometheus text exposition format 0.0.4',
          content: { 'text/plain': { schema: Type.String() } },
        },
      },
    },
  }, async (_request, reply) => {
    const { contentType, text } = await service.metrics.render()
    return reply.type(contentType).send(text)
  })
}
