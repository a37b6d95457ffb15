import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses, GroupParamsSchema } from '../../schemas/common.js'
import { MessagesReplySchema, ReadMessagesQuerySchema, RelayBodySchema, RelayReplySchema } from '../../schemas/messages.js'
import { messageView, toBase64 } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'

const tags = ['messages']

export const messageRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService }> = async (app, { service }) => {
  app.post('/groups/:group/messages', {
    schema: {
      summary: 'Relay a message to a group',
      description: 'The message gets the next seq of the group (1, 2, 3, … with no gaps). Only members may send.',
      tags,
      params: GroupParamsSchema,
      body: RelayBodySchema,
      response: { 201: RelayReplySchema, ...errorResponses(400, 403, 404, 413, 415) },
    },
  }, async (request, reply) => {
    const { sender_id, message, message_type } = request.body
    const result = await service.relayMessage({
      groupId: request.params.group,
      senderId: sender_id,
      message: Buffer.from(message, 'base64'),
      messageType: message_type,
    })
    return reply.status(201).send({ group_id: result.groupId, seq: result.seq })
  })

  app.get('/groups/:group/messages', {
    schema: {
      summary: "Read a group's messages after a seq, in seq order",
      tags,
      params: GroupParamsSchema,
      querystring: ReadMessagesQuerySchema,
      response: { 200: MessagesReplySchema, ...errorResponses(400, 404) },
    },
  }, async (request) => {
    const { group } = request.params
    const messages = await service.readMessages(group, request.query.after, request.query.limit)
    return { group_id: group, messages: messages.map((m) => messageView(m, toBase64)) }
  })
}
