import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errorResponses, GroupMemberParamsSchema, GroupParamsSchema } from '../../schemas/common.js'
import { CreateGroupBodySchema, GroupSchema, JoinGroupBodySchema } from '../../schemas/groups.js'
import { groupView } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'

const tags = ['groups']
const NoContent = Type.Null({ description: 'Done' })

export const groupRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService }> = async (app, { service }) => {
  app.post('/groups', {
    schema: {
      summary: 'Create a group; the creator is its first member',
      tags,
      body: CreateGroupBodySchema,
      response: { 201: GroupSchema, ...errorResponses(400, 409, 413, 415) },
    },
  }, async (request, reply) => {
    const group = await service.createGroup(request.body.group_id, request.body.creator_id)
    return reply.status(201).send(groupView(group))
  })

  app.get('/groups/:group', {
    schema: {
      summary: 'Read a group: its members and the next seq',
      tags,
      params: GroupParamsSchema,
      response: { 200: GroupSchema, ...errorResponses(400, 404) },
    },
  }, async (request) => groupView(await service.getGroup(request.params.group)))

  app.delete('/groups/:group', {
    schema: {
      summary: 'Delete a group and all its messages',
      tags,
      params: GroupParamsSchema,
      response: { 204: NoContent, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    await service.deleteGroup(request.params.group)
    return reply.status(204).send(null)
  })

  app.post('/groups/:group/members', {
    schema: {
      summary: 'Join a group (joining twice is not an error)',
      tags,
      params: GroupParamsSchema,
      body: JoinGroupBodySchema,
      response: { 200: GroupSchema, ...errorResponses(400, 404, 413, 415) },
    },
  }, async (request) => groupView(await service.joinGroup(request.params.group, request.body.client_id)))

  app.delete('/groups/:group/members/:client', {
    schema: {
      summary: 'Leave a group',
      tags,
      params: GroupMemberParamsSchema,
      response: { 204: NoContent, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    await service.leaveGroup(request.params.group, request.params.client)
    return reply.status(204).send(null)
  })
}
