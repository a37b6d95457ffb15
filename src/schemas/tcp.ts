import { Type, type Static } from 'typebox'
import { MAX_CLIENT_LIST_LIMIT, MAX_READ_LIMIT } from '../service/delivery-service.js'
import { IdSchema, MessageTypeSchema } from './common.js'
import { epochSchema } from './groups.js'
import { KeyPackageRefParamsSchema, MAX_BATCH } from './key-packages.js'
import type { clientDeletedView, clientGroupsView, deliveryView, gapView, groupInfoView, groupView, keyPackageCountView, messagesView, welcomeView } from './views.js'

/**
 * The legacy TCP-JSON protocol: one object per request, tagged by `type`, binary data as
 * arrays of byte values. Unknown fields are ignored, as the original's serde structs did.
 */

export const ByteSchema = Type.Integer({ minimum: 0, maximum: 255 })
/** Data the service would reject when empty, so say so before calling it. */
export const BytesSchema = Type.Array(ByteSchema, { minItems: 1, description: 'Bytes as an array of integers 0..255' })

const request = <T extends string, P extends Parameters<typeof Type.Object>[0]>(type: T, fields: P) =>
  Type.Object({ type: Type.Literal(type), ...fields })

export const StoreKeyPackageRequestSchema = request('StoreKeyPackage', { client_id: IdSchema, key_package: BytesSchema })
export const FetchKeyPackageRequestSchema = request('FetchKeyPackage', {
  client_id: IdSchema,
  // Extension: only a KeyPackage of this ciphersuite.
  ciphersuite: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Only a KeyPackage of this ciphersuite' })),
})
export const ListKeyPackagesRequestSchema = request('ListKeyPackages', {
  // Extension: a page of the list; without them, every client, as the original answered.
  after: Type.Optional({ ...IdSchema, description: 'Only clients after this id (the next_after of the page before)' }),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CLIENT_LIST_LIMIT, description: 'At most this many; default: every one' })),
})
export const CreateGroupRequestSchema = request('CreateGroup', {
  group_id: IdSchema,
  creator_id: IdSchema,
  // Extension: the MLS epoch the group is at now.
  epoch: Type.Optional(epochSchema('The MLS epoch the group is at now (default 0)')),
})
export const JoinGroupRequestSchema = request('JoinGroup', { group_id: IdSchema, client_id: IdSchema })
export const RelayMessageRequestSchema = request('RelayMessage', {
  group_id: IdSchema,
  sender_id: IdSchema,
  message: BytesSchema,
  message_type: MessageTypeSchema,
})

// Extensions: legacy clients never send these.
export const GetGroupRequestSchema = request('GetGroup', { group_id: IdSchema })
export const LeaveGroupRequestSchema = request('LeaveGroup', { group_id: IdSchema, client_id: IdSchema })
export const DeleteGroupRequestSchema = request('DeleteGroup', { group_id: IdSchema })
export const DeleteKeyPackagesRequestSchema = request('DeleteKeyPackages', { client_id: IdSchema })
// A client's groups and its deletion (REST: GET /clients/{c}/groups, DELETE /clients/{c}).
export const ListClientGroupsRequestSchema = request('ListClientGroups', {
  client_id: IdSchema,
  after: Type.Optional({ ...IdSchema, description: 'Only groups after this id (the next_after of the page before)' }),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CLIENT_LIST_LIMIT, description: `At most this many; default ${MAX_CLIENT_LIST_LIMIT}` })),
})
export const DeleteClientRequestSchema = request('DeleteClient', { client_id: IdSchema })
export const ReadMessagesRequestSchema = request('ReadMessages', {
  group_id: IdSchema,
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'Return messages with seq greater than this; default 0' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_READ_LIMIT, description: 'At most this many; default 100' })),
})

// Extensions for MLS (issue 3), the TCP twins of the REST operations.
const page = {
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'Return entries with seq greater than this; default 0' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_READ_LIMIT, description: 'At most this many; default 100' })),
}
export const StoreKeyPackagesRequestSchema = request('StoreKeyPackages', {
  client_id: IdSchema,
  key_packages: Type.Array(BytesSchema, { minItems: 1, maxItems: MAX_BATCH }),
})
export const CountKeyPackagesRequestSchema = request('CountKeyPackages', { client_id: IdSchema })
export const DeleteKeyPackageRequestSchema = request('DeleteKeyPackage', { client_id: IdSchema, ref: KeyPackageRefParamsSchema.properties.ref })
export const CommitBundleRequestSchema = request('CommitBundle', {
  group_id: IdSchema,
  sender_id: IdSchema,
  commit: BytesSchema,
  welcome: Type.Optional(BytesSchema),
  group_info: Type.Optional(BytesSchema),
  ratchet_tree: Type.Optional(BytesSchema),
  welcome_recipients: Type.Optional(Type.Array(IdSchema, { minItems: 1, maxItems: 10000 })),
})
export const ReadWelcomesRequestSchema = request('ReadWelcomes', { client_id: IdSchema, ...page })
export const GetGroupInfoRequestSchema = request('GetGroupInfo', { group_id: IdSchema })

// AUTH=jwt: the token (a JWT) that names the connection's client.
export const AuthenticateRequestSchema = request('Authenticate', { token: Type.String({ minLength: 1, maxLength: 16384, description: 'A JWT whose sub is the client id' }) })

// Extensions for live delivery (issue 4): a connection that becomes a stream of the client's queue.
export const SubscribeRequestSchema = request('Subscribe', {
  client_id: IdSchema,
  after: Type.Optional(Type.Integer({ minimum: 0, description: 'Replay deliveries with seq greater than this, then stream; default 0' })),
})
export const AckRequestSchema = request('Ack', {
  up_to: Type.Integer({ minimum: 0, description: 'Drop every delivery with seq up to this one' }),
  client_id: Type.Optional(IdSchema),
})

export type StoreKeyPackageRequest = Static<typeof StoreKeyPackageRequestSchema>
export type FetchKeyPackageRequest = Static<typeof FetchKeyPackageRequestSchema>
export type ListKeyPackagesRequest = Static<typeof ListKeyPackagesRequestSchema>
export type CreateGroupRequest = Static<typeof CreateGroupRequestSchema>
export type JoinGroupRequest = Static<typeof JoinGroupRequestSchema>
export type RelayMessageRequest = Static<typeof RelayMessageRequestSchema>
export type GetGroupRequest = Static<typeof GetGroupRequestSchema>
export type LeaveGroupRequest = Static<typeof LeaveGroupRequestSchema>
export type DeleteGroupRequest = Static<typeof DeleteGroupRequestSchema>
export type DeleteKeyPackagesRequest = Static<typeof DeleteKeyPackagesRequestSchema>
export type ListClientGroupsRequest = Static<typeof ListClientGroupsRequestSchema>
export type DeleteClientRequest = Static<typeof DeleteClientRequestSchema>
export type ReadMessagesRequest = Static<typeof ReadMessagesRequestSchema>
export type StoreKeyPackagesRequest = Static<typeof StoreKeyPackagesRequestSchema>
export type CountKeyPackagesRequest = Static<typeof CountKeyPackagesRequestSchema>
export type DeleteKeyPackageRequest = Static<typeof DeleteKeyPackageRequestSchema>
export type CommitBundleRequest = Static<typeof CommitBundleRequestSchema>
export type ReadWelcomesRequest = Static<typeof ReadWelcomesRequestSchema>
export type GetGroupInfoRequest = Static<typeof GetGroupInfoRequestSchema>
export type SubscribeRequest = Static<typeof SubscribeRequestSchema>
export type AckRequest = Static<typeof AckRequestSchema>
export type AuthenticateRequest = Static<typeof AuthenticateRequestSchema>

// Responses. The first four are the original's shapes; legacy clients compare them exactly.
export const MessageResponseSchema = Type.Object({
  type: Type.Literal('MessageResponse'),
  success: Type.Boolean(),
  message: Type.String(),
})
export const KeyPackageResponseSchema = Type.Object({
  type: Type.Literal('KeyPackageResponse'),
  client_id: IdSchema,
  key_package: Type.Union([Type.Array(ByteSchema), Type.Null()], { description: 'null when the client has none' }),
})
export const KeyPackageListResponseSchema = Type.Object({
  type: Type.Literal('KeyPackageListResponse'),
  clients: Type.Array(IdSchema),
  next_after: Type.Optional(IdSchema),
})
export const GroupResponseSchema = Type.Object({
  type: Type.Literal('GroupResponse'),
  group_id: IdSchema,
  members: Type.Array(IdSchema),
})
export const ErrorResponseSchema = Type.Object({ type: Type.Literal('Error'), message: Type.String() })
/**
 * A refusal of the service ("Failed to <operation>: <reason>") also names its code from the
 * one error table (src/errors.ts) and the error's details (e.g. `current_epoch`, `check`):
 * additive fields, which legacy clients (comparing `type` and `message`) never look at.
 */
export const ServiceErrorResponseSchema = Type.Object(
  {
    type: Type.Literal('Error'),
    message: Type.String(),
    code: Type.String({ description: 'The error code, as in the REST `error` field, e.g. stale_epoch' }),
  },
  { additionalProperties: true },
)

export type MessageResponse = Static<typeof MessageResponseSchema>
export type KeyPackageResponse = Static<typeof KeyPackageResponseSchema>
export type KeyPackageListResponse = Static<typeof KeyPackageListResponseSchema>
export type GroupResponse = Static<typeof GroupResponseSchema>
export type ErrorResponse = Static<typeof ErrorResponseSchema>
export type ServiceErrorResponse = Static<typeof ServiceErrorResponseSchema> & Record<string, unknown>

/** StoreKeyPackages: the legacy MessageResponse plus the counts of the REST reply. */
export type StoreKeyPackagesResponse = MessageResponse & { stored: number; available: number }
/** FetchKeyPackage of an MLS KeyPackage: the legacy shape plus the facts of the REST reply. */
export type MlsKeyPackageResponse = KeyPackageResponse & { key_package_ref: string; ciphersuite: number | null; last_resort: boolean }

// Extension answers carry the same facts as REST (src/schemas/views.ts), with bytes as arrays,
// so their types follow the views rather than a second list of fields that could drift.
/** GetGroup and LeaveGroup: a GroupResponse with every field of the group view. */
export type GroupDetailsResponse = { type: 'GroupResponse' } & ReturnType<typeof groupView>
export type MessagesResponse = { type: 'MessagesResponse' } & ReturnType<typeof messagesView<number[]>>
export type KeyPackageCountResponse = { type: 'KeyPackageCountResponse' } & ReturnType<typeof keyPackageCountView>
export type CommitResponse = { type: 'CommitResponse'; group_id: string; seq: number; epoch: number; message_type: Static<typeof MessageTypeSchema> }
export type WelcomesResponse = {
  type: 'WelcomesResponse'
  client_id: string
  welcomes: Array<ReturnType<typeof welcomeView<number[]>>>
}
export type GroupInfoResponse = { type: 'GroupInfoResponse' } & ReturnType<typeof groupInfoView<number[]>>
export type ClientGroupsResponse = { type: 'ClientGroupsResponse' } & ReturnType<typeof clientGroupsView>
export type ClientDeletedResponse = { type: 'ClientDeletedResponse' } & ReturnType<typeof clientDeletedView>
export type SubscribedResponse = { type: 'Subscribed'; client_id: string; after: number }
export type AckResponse = { type: 'AckResponse'; client_id: string; acked_up_to: number; remaining: number }
/** expires_at: when the service stops taking the token (its exp and the clock tolerance), ISO 8601. */
export type AuthenticatedResponse = { type: 'Authenticated'; client_id: string; expires_at: string }
/** Written by a subscribed connection's stream, not in answer to a request. */
export type DeliveryFrame = { type: 'Delivery' } & ReturnType<typeof deliveryView<number[]>>
export type GapFrame = { type: 'Gap' } & ReturnType<typeof gapView>

export type TcpResponse =
  | MessageResponse
  | StoreKeyPackagesResponse
  | KeyPackageResponse
  | MlsKeyPackageResponse
  | KeyPackageListResponse
  | GroupResponse
  | GroupDetailsResponse
  | ErrorResponse
  | ServiceErrorResponse
  | MessagesResponse
  | KeyPackageCountResponse
  | CommitResponse
  | WelcomesResponse
  | GroupInfoResponse
  | ClientGroupsResponse
  | ClientDeletedResponse
  | SubscribedResponse
  | AckResponse
  | AuthenticatedResponse

/** Everything the server writes: answers, and the frames of a live stream. */
export type TcpFrame = TcpResponse | DeliveryFrame | GapFrame

/** Response types; a client sending one of these as a request gets "Invalid message type for server". */
export const RESPONSE_TYPES: ReadonlySet<string> = new Set<TcpFrame['type']>([
  'MessageResponse',
  'KeyPackageResponse',
  'KeyPackageListResponse',
  'GroupResponse',
  'Error',
  'MessagesResponse',
  'KeyPackageCountResponse',
  'CommitResponse',
  'WelcomesResponse',
  'GroupInfoResponse',
  'ClientGroupsResponse',
  'ClientDeletedResponse',
  'Subscribed',
  'AckResponse',
  'Authenticated',
  'Delivery',
  'Gap',
])
