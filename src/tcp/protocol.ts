/**
 * The legacy TCP-JSON protocol: one request object in, one response object out.
 * Validate, call the DeliveryService, map the result; the same service and state as REST.
 *
 * Original requests (LEGACY-TCP.md) and their exact answers:
 *   StoreKeyPackage {client_id, key_package: bytes}  -> MessageResponse "KeyPackage stored for <client_id>"
 *   FetchKeyPackage {client_id}                      -> KeyPackageResponse {client_id, key_package: bytes | null}
 *   ListKeyPackages {}                               -> KeyPackageListResponse {clients}
 *   CreateGroup {group_id, creator_id}               -> GroupResponse {group_id, members}
 *   JoinGroup {group_id, client_id}                  -> GroupResponse {group_id, members}
 *   RelayMessage {group_id, sender_id, message: bytes, message_type} -> MessageResponse "Message relayed successfully"
 *
 * Extensions (legacy clients never send them):
 *   GetGroup {group_id}
 *     -> {"type":"GroupResponse","group_id","members":[...],"creator_id","next_seq","epoch","created_at"}
 *        (every field of the REST group view)
 *   LeaveGroup {group_id, client_id}
 *     -> GroupResponse as for GetGroup, without the member who left
 *   ReadMessages {group_id, after?: seq (default 0), limit?: 1..1000 (default 100)}
 *     -> {"type":"MessagesResponse","group_id","messages":[{"seq","sender_id","message_type","epoch",
 *         "content_type","message":[bytes],"received_at"}, ...]}  messages with seq > after, in
 *        seq order, with the fields of the REST message view (epoch and content_type are null
 *        for bytes that are not MLS).
 *        An answer holds at most MAX_MESSAGE_BYTES of message data (always at least one
 *        message); read on with after = the last seq received.
 *   DeleteGroup {group_id}
 *     -> {"type":"MessageResponse","success":true,"message":"Group deleted: <group_id>"}
 *   DeleteKeyPackages {client_id}
 *     -> {"type":"MessageResponse","success":true,"message":"Deleted <n> KeyPackage(s) for <client_id>"}
 *
 * Errors are {"type":"Error","message":...}:
 *   "Invalid message format: <detail>"  not JSON, not an object, an unknown `type`, a missing
 *                                       or mistyped field (the detail names it), or too large
 *   "Invalid message type for server"   a response type sent as a request
 *   "Failed to <operation>: <reason>"   the service refused, e.g. "Failed to join group:
 *                                       Group not found: g"; "Internal server error" when it failed
 */
import type { Logger } from 'pino'
import type { ValidationMode } from '../config.js'
import type { Static, TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { isServiceError } from '../errors.js'
import type { DeliveryService } from '../service/delivery-service.js'
import { groupView, keyPackageView, messageView, toByteArray } from '../schemas/views.js'
import * as S from '../schemas/tcp.js'
import type { ErrorResponse, GroupDetailsResponse, GroupResponse, TcpResponse } from '../schemas/tcp.js'
import { describeSchemaError, describeValue, unknownVariant } from './describe.js'
import type { Frame } from './framing.js'

export interface ProtocolOptions {
  readonly service: DeliveryService
  readonly log: Pick<Logger, 'error'>
  /** Also bounds the message data in one ReadMessages answer. */
  readonly maxMessageBytes: number
  /** How the service treats bytes that are not MLS; the original clients send placeholders, so 'permissive'. */
  readonly validation: ValidationMode
}

export interface Protocol {
  /** Never rejects: every failure becomes an Error response. */
  answer(frame: Frame): Promise<TcpResponse>
}

interface Operation {
  /** "Failed to <what>: " prefixes a refusal of the service. */
  readonly what: string
  readonly run: (request: unknown) => Promise<TcpResponse> | string
}

export const errorResponse = (message: string): ErrorResponse => ({ type: 'Error', message })
export const invalidFormat = (detail: string): ErrorResponse => errorResponse(`Invalid message format: ${detail}`)
export const INVALID_TYPE_FOR_SERVER = 'Invalid message type for server'

export function createProtocol(options: ProtocolOptions): Protocol {
  const { service, log, maxMessageBytes, validation } = options
  const success = (message: string) => ({ type: 'MessageResponse', success: true, message }) as const
  const fullGroup = (group: Parameters<typeof groupView>[0]): GroupDetailsResponse => ({ type: 'GroupResponse', ...groupView(group) })
  // The original's GroupResponse carried only these two fields.
  const legacyGroup = (group: Parameters<typeof groupView>[0]): GroupResponse => {
    const { group_id, members } = groupView(group)
    return { type: 'GroupResponse', group_id, members }
  }

  // A Map, not an object: `type` is user input and may be "__proto__" or "constructor".
  const operations = new Map<string, Operation>([
    op(S.StoreKeyPackageRequestSchema, 'store key package', async (r) => {
      await service.storeKeyPackages(r.client_id, [Uint8Array.from(r.key_package)], { validation })
      return success(`KeyPackage stored for ${r.client_id}`)
    }),
    op(S.FetchKeyPackageRequestSchema, 'fetch key package', async (r) => {
      const record = await service.fetchKeyPackage(r.client_id)
      // No key_package_ref: legacy clients compare this shape exactly.
      const key_package = record ? keyPackageView(r.client_id, record, toByteArray).key_package : null
      return { type: 'KeyPackageResponse', client_id: r.client_id, key_package }
    }),
    op(S.ListKeyPackagesRequestSchema, 'list key packages', async () => ({
      type: 'KeyPackageListResponse',
      clients: await service.listKeyPackageClients(),
    })),
    op(S.CreateGroupRequestSchema, 'create group', async (r) => legacyGroup(await service.createGroup(r.group_id, r.creator_id))),
    op(S.JoinGroupRequestSchema, 'join group', async (r) => legacyGroup(await service.joinGroup(r.group_id, r.client_id))),
    op(S.RelayMessageRequestSchema, 'relay message', async (r) => {
      const message = Uint8Array.from(r.message)
      await service.relayMessage({ groupId: r.group_id, senderId: r.sender_id, message, messageType: r.message_type }, { validation })
      return success('Message relayed successfully')
    }),
    op(S.GetGroupRequestSchema, 'get group', async (r) => fullGroup(await service.getGroup(r.group_id))),
    op(S.LeaveGroupRequestSchema, 'leave group', async (r) => fullGroup(await service.leaveGroup(r.group_id, r.client_id))),
    op(S.ReadMessagesRequestSchema, 'read messages', async (r) => {
      const stored = await service.readMessages(r.group_id, r.after, r.limit)
      // An array of byte values is up to 4 bytes of JSON per byte: keep one answer bounded.
      let budget = maxMessageBytes
      const messages = []
      for (const message of stored) {
        if (messages.length > 0 && message.data.length > budget) break
        budget -= message.data.length
        messages.push(messageView(message, toByteArray))
      }
      return { type: 'MessagesResponse', group_id: r.group_id, messages }
    }),
    op(S.DeleteGroupRequestSchema, 'delete group', async (r) => {
      await service.deleteGroup(r.group_id)
      return success(`Group deleted: ${r.group_id}`)
    }),
    op(S.DeleteKeyPackagesRequestSchema, 'delete key packages', async (r) => {
      const count = await service.deleteKeyPackages(r.client_id)
      return success(`Deleted ${count} KeyPackage(s) for ${r.client_id}`)
    }),
  ])
  const requestTypes = [...operations.keys()]

  async function answerValue(request: unknown): Promise<TcpResponse> {
    // The original's serde enum was tagged by `type` ("internally tagged").
    if (typeof request !== 'object' || request === null || Array.isArray(request)) {
      return invalidFormat(`invalid type: ${describeValue(request)}, expected a map tagged by \`type\``)
    }
    if (!Object.hasOwn(request, 'type')) return invalidFormat('missing field `type`')
    const type = (request as { type: unknown }).type
    if (typeof type !== 'string') return invalidFormat(`invalid type: ${describeValue(type)}, expected a string at field \`type\``)
    if (S.RESPONSE_TYPES.has(type)) return errorResponse(INVALID_TYPE_FOR_SERVER)
    const operation = operations.get(type)
    if (!operation) return invalidFormat(unknownVariant(type, requestTypes))
    try {
      const result = operation.run(request)
      return typeof result === 'string' ? invalidFormat(result) : await result
    } catch (err) {
      if (isServiceError(err) && err.status < 500) return errorResponse(`Failed to ${operation.what}: ${err.message}`)
      log.error({ err, type }, 'TCP request failed')
      return errorResponse(`Failed to ${operation.what}: Internal server error`)
    }
  }

  return {
    async answer(frame) {
      switch (frame.kind) {
        case 'value':
          return answerValue(frame.value)
        case 'invalid':
          return invalidFormat(frame.detail)
        case 'too_large':
          return invalidFormat(`request larger than ${frame.limit} bytes`)
      }
    },
  }
}

/** One request type: its compiled schema and what to do with a valid request. */
function op<T extends TSchema & { properties: { type: { const: string } } }>(
  schema: T,
  what: string,
  handle: (request: Static<T>) => Promise<TcpResponse>,
): [string, Operation] {
  const validator = Compile(schema)
  const run = (request: unknown) => (validator.Check(request) ? handle(request as Static<T>) : describeSchemaError(request, validator.Errors(request)))
  return [schema.properties.type.const, { what, run }]
}
