import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errorResponses, GroupMemberParamsSchema, GroupParamsSchema } from '../../schemas/common.js'
import { CreateGroupBodySchema, GroupSchema, JoinGroupBodySchema } from '../../schemas/groups.js'
import { GroupInfoReplySchema } from '../../schemas/messages.js'
import { groupInfoView, groupView, toBase64 } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'
import type { AccessPolicy } from '../../auth/access-policy.js'

const tags = ['groups']
const NoContent = Type.Null({ description: 'Done' })

export const groupRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService; access: AccessPolicy }> = async (app, { service, access }) => {
  app.post('/groups', {
    schema: {
      summary: 'Create a group; the creator is its first member',
      tags,
      body: CreateGroupBodySchema,
      response: { 201: GroupSchema, ...errorResponses(400, 403, 409, 413, 415) },
    },
  }, async (request, reply) => {
    access.self(request.caller, request.body.creator_id, 'create a group as its creator_id')
    const group = await service.createGroup(request.body.group_id, request.body.creator_id, { epoch: request.body.epoch })
    return reply.status(201).send(groupView(group))
  })

  app.get('/groups/:group', {
    schema: {
      summary: 'Read a group: its members and the next seq',
      tags,
      params: GroupParamsSchema,
      response: { 200: GroupSchema, ...errorResponses(400, 403, 404) },
    },
  }, async (request) => {
    const checked = await access.member(request.caller, request.params.group, 'read it')
    return groupView(checked ?? await service.getGroup(request.params.group))
  })

  app.delete('/groups/:group', {
    schema: {
      summary: 'Delete a group and all its messages',
      tags,
      params: GroupParamsSchema,
      response: { 204: NoContent, ...errorResponses(400, 403, 404) },
    },
  }, async (request, reply) => {
    await access.member(request.caller, request.params.group, 'delete it')
    await service.deleteGroup(request.params.group)
    return reply.status(204).send(null)
  })

  app.post('/groups/:group/members', {
    schema: {
      summary: 'Join a group (joining twice is not an error)',
      tags,
      params: GroupParamsSchema,
      body: JoinGroupBodySchema,
      response: { 200: GroupSchema, ...errorResponses(400, 403, 404, 413, 415) },
    },
  }, async (request) => {
    await access.member(request.caller, request.params.group, 'add members')
    return groupView(await service.joinGroup(request.params.group, request.body.client_id))
  })

  app.delete('/groups/:group/members/:client', {
    schema: {
      summary: 'Leave a group',
      tags,
      params: GroupMemberParamsSchema,
      response: { 204: NoContent, ...errorResponses(400, 403, 404) },
    },
  }, async (request, reply) => {
    await access.selfOrMember(request.caller, request.params.client, request.params.group, 'remove others')
    await service.leaveGroup(request.params.group, request.params.client)
    return reply.status(204).send(null)
  })

  app.get('/groups/:group/group-info', {
    schema: {
      summary: 'The latest GroupInfo of a group (and its ratchet tree, when one was sent)',
      description: 'For members joining by a Welcome without the ratchet tree (RFC 9420 §12.4.3). JSON with base64 fields, or the raw GroupInfo with `Accept: message/mls`. With AUTH=jwt, members only.',
      tags,
      params: GroupParamsSchema,
      response: {
        200: {
          description: 'The GroupInfo of the current epoch',
          content: {
            'application/json': { schema: GroupInfoReplySchema },
            'message/mls': { schema: Type.String({ format: 'binary' }) },
          },
        },
        ...errorResponses(400, 403, 404),
      },
    },
  }, async (request, reply) => {
    const { group } = request.params
    await access.member(request.caller, group, 'read its GroupInfo')
    const info = await service.getGroupInfo(group)
    if (wantsRawMls(request.headers.accept)) {
      // A Buffer is sent as it is, without the JSON serializer.
      return reply.type('message/mls').send(Buffer.from(info.data) as never)
    }
    return groupInfoView(group, info, toBase64)
  })
}

/** RFC 9420 §17.10: a client that asks for message/mls (and not JSON) gets the raw bytes. */
function wantsRawMls(accept: string | undefined): boolean {
  return accept !== undefined && /\bmessage\/mls\b/i.test(accept) && !/application\/json/i.test(accept)
}
