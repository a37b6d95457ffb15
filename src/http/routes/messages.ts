import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { ValidationMode } from '../../config.js'
import { errorResponses, GroupParamsSchema } from '../../schemas/common.js'
import { CommitBodySchema, MessagesReplySchema, PageQuerySchema, RelayBodySchema, RelayReplySchema } from '../../schemas/messages.js'
import { fromBase64 } from '../../schemas/base64.js'
import { messagesView, relayView, toBase64 } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'
import type { AccessPolicy } from '../../auth/access-policy.js'

const tags = ['messages']
const IdempotencyHeadersSchema = Type.Object({
  'idempotency-key': Type.Optional(Type.String({
    minLength: 1,
    maxLength: 256,
    description: 'A retry with the same key (from the same sender to the same group, within IDEMPOTENCY_WINDOW) returns the original result and is delivered once. The same bytes from the same sender count as a retry too.',
  })),
})

export const messageRoutes: FastifyPluginAsyncTypebox<{ service: DeliveryService; validation: ValidationMode; access: AccessPolicy }> = async (app, { service, validation, access }) => {
  app.post('/groups/:group/messages', {
    schema: {
      summary: 'Relay a message to a group',
      description: 'The message gets the next seq of the group (1, 2, 3, … with no gaps). Only members may send, but for an external commit ' +
        '(RFC 9420 §12.4.3.2), which makes its sender a member, as POST /groups/{group}/commits describes. ' +
        'MLS messages must name this group and carry its current epoch; a Commit moves the group to the next epoch ' +
        '(409 `stale_epoch` with `current_epoch` otherwise). A Welcome is also routed to the clients its KeyPackageRefs were handed out to.',
      tags,
      params: GroupParamsSchema,
      headers: IdempotencyHeadersSchema,
      body: RelayBodySchema,
      response: { 201: RelayReplySchema, ...errorResponses(400, 403, 404, 409, 413, 415, 422, 429) },
    },
  }, async (request, reply) => {
    const { sender_id, message, message_type } = request.body
    access.self(request.caller, sender_id, 'send as its sender_id')
    const result = await service.relayMessage(
      { groupId: request.params.group, senderId: sender_id, message: fromBase64(message), messageType: message_type, idempotencyKey: request.headers['idempotency-key'] },
      { validation },
    )
    return reply.status(201).send(relayView(result))
  })

  app.post('/groups/:group/commits', {
    schema: {
      summary: 'Send a Commit with its Welcome and GroupInfo, as one atomic step',
      description: 'Checks the epoch, appends the Commit, keeps the GroupInfo (and ratchet tree) of the new epoch, and only then ' +
        'routes the Welcome to its recipients, who become members (RFC 9420 §14). A rejected Commit routes nothing. ' +
        'An external commit (RFC 9420 §12.4.3.2, sender new_member_commit) makes its sender a member in the same step, without a Welcome; ' +
        'from a non-member it must be for the current epoch and verify against the GroupContext of the GroupInfo kept for it, else it is answered ' +
        '400 invalid_message with check external_commit, whatever the reason (a member\'s is taken as any commit: a resync); ' +
        'MLS_EXTERNAL_COMMITS=false refuses it from non-members (403).',
      tags,
      params: GroupParamsSchema,
      headers: IdempotencyHeadersSchema,
      body: CommitBodySchema,
      response: { 201: RelayReplySchema, ...errorResponses(400, 403, 404, 409, 413, 415, 422, 429) },
    },
  }, async (request, reply) => {
    const body = request.body
    access.self(request.caller, body.sender_id, 'commit as its sender_id')
    const result = await service.commit({
      groupId: request.params.group,
      senderId: body.sender_id,
      commit: fromBase64(body.commit),
      welcome: body.welcome === undefined ? undefined : fromBase64(body.welcome),
      groupInfo: body.group_info === undefined ? undefined : fromBase64(body.group_info),
      ratchetTree: body.ratchet_tree === undefined ? undefined : fromBase64(body.ratchet_tree),
      welcomeRecipients: body.welcome_recipients,
      idempotencyKey: request.headers['idempotency-key'],
    })
    return reply.status(201).send(relayView(result))
  })

  app.get('/groups/:group/messages', {
    schema: {
      summary: "Read a group's messages after a seq, in seq order",
      tags,
      params: GroupParamsSchema,
      querystring: PageQuerySchema,
      response: { 200: MessagesReplySchema, ...errorResponses(400, 403, 404) },
    },
  }, async (request) => {
    const { group } = request.params
    await access.member(request.caller, group, "read the group's messages")
    const { after, limit } = request.query
    return messagesView(group, await service.readMessages(group, after, limit), after, toBase64)
  })
}
