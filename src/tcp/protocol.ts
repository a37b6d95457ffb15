/**
 * The legacy TCP-JSON protocol: one request object in, one response object out.
 * Validate, call the DeliveryService, map the result; the same service and state as REST.
 *
 * Original requests (LEGACY-TCP.md) and their exact answers:
 *   StoreKeyPackage {client_id, key_package: bytes}  -> MessageResponse "KeyPackage stored for <client_id>"
 *   FetchKeyPackage {client_id, ciphersuite?}        -> KeyPackageResponse {client_id, key_package: bytes | null}
 *   ListKeyPackages {}                               -> KeyPackageListResponse {clients}
 *   CreateGroup {group_id, creator_id, epoch?}       -> GroupResponse {group_id, members}
 *   JoinGroup {group_id, client_id}                  -> GroupResponse {group_id, members}
 *   RelayMessage {group_id, sender_id, message: bytes, message_type} -> MessageResponse "Message relayed successfully"
 *
 * Bytes are arrays of integers 0..255. Bytes that are MLS are always fully validated (a
 * KeyPackage: complete decoding, ciphersuite, both signatures, lifetime; a message: its group
 * id and epoch); bytes that are not MLS at all are kept as opaque legacy data, as the original
 * did (TCP_MLS_VALIDATION=permissive, the default), or refused (strict).
 *
 * Additive fields on the original requests (legacy clients never send them):
 *   FetchKeyPackage `ciphersuite`: only a KeyPackage of that suite (none left: key_package null).
 *     An MLS KeyPackage is answered with three more fields, as REST does:
 *     {"type":"KeyPackageResponse","client_id","key_package":[bytes],"key_package_ref":"<hex>",
 *      "ciphersuite":<id>,"last_resort":<bool>}. Opaque legacy data keeps exactly the original's
 *     shape, so the original clients (who only ever store placeholders) never see a new field.
 *   CreateGroup `epoch`: the MLS epoch the group is at now (default 0).
 *   ListKeyPackages `after`, `limit` (1..1000): a page of the list, in code point order, with
 *     `next_after` in the answer when more follow; without them every client, as the original.
 * RelayMessage of MLS bytes keeps its shape: `message_type` is still required and must agree
 * with the bytes; the message must name this group and carry its current epoch, and a Commit
 * moves the group to the next one (RFC 9750 §5.2.1).
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
 *   ListClientGroups {client_id, after?: group id, limit?: 1..1000 (default 1000)}   (REST: GET /clients/{c}/groups)
 *     -> {"type":"ClientGroupsResponse","client_id","groups":[...],"next_after"?}   the groups it is a member
 *        of, in code point order; next_after when more follow
 *   DeleteClient {client_id}   (REST: DELETE /clients/{c})
 *     -> {"type":"ClientDeletedResponse","client_id","groups_left","key_packages_deleted","deliveries_deleted","welcomes_deleted"}
 *
 * MLS extensions, the twins of the REST operations (same service, same state):
 *   StoreKeyPackages {client_id, key_packages: [bytes, ...]}   (1..1000; one bad one rejects the batch)
 *     -> {"type":"MessageResponse","success":true,"message":"Stored <n> KeyPackage(s) for <client_id>",
 *         "stored":<n>,"available":<total now available>}
 *   CountKeyPackages {client_id}
 *     -> {"type":"KeyPackageCountResponse","client_id","total","by_ciphersuite":{"<id>":n,...},"last_resort","legacy"}
 *   DeleteKeyPackage {client_id, ref: hex KeyPackageRef}
 *     -> {"type":"MessageResponse","success":true,"message":"KeyPackage deleted: <ref>"}
 *   CommitBundle {group_id, sender_id, commit: bytes, welcome?: bytes, group_info?: bytes,
 *                 ratchet_tree?: bytes, welcome_recipients?: [client_id, ...]}   (REST: POST /groups/{g}/commits)
 *     -> {"type":"CommitResponse","group_id","seq","epoch","message_type":"Commit"}   epoch: the group's new epoch.
 *        One atomic step: epoch check, append the Commit, keep the GroupInfo, then route the
 *        Welcome to the clients its KeyPackageRefs were handed out to (RFC 9420 §14).
 *   ReadWelcomes {client_id, after?: seq (default 0), limit?: 1..1000 (default 100)}
 *     -> {"type":"WelcomesResponse","client_id","welcomes":[{"seq","group_id","sender_id",
 *         "welcome":[bytes],"received_at"}, ...]}   seq counts this client's Welcome inbox; bounded
 *        like ReadMessages.
 *   GetGroupInfo {group_id}
 *     -> {"type":"GroupInfoResponse","group_id","epoch","group_info":[bytes],"ratchet_tree":[bytes]|null}
 *
 * Live delivery (issue 4), the twin of the WebSocket stream GET /clients/{c}/stream:
 *   Subscribe {client_id, after?: seq (default 0)}
 *     -> {"type":"Subscribed","client_id","after"}, then the connection also carries one line per
 *        delivery of the client's queue with seq > after, in seq order: first what is queued, then
 *        live, with no gap and no duplicate:
 *        {"type":"Delivery","seq","group_id","group_seq","sender_id","kind","message_type","epoch",
 *         "content_type","message":[bytes],"received_at"}   (the fields of the REST delivery view)
 *        When retention dropped deliveries the client never acknowledged (RFC 9750 §5.3):
 *        {"type":"Gap","missed_from","first_available_seq"}
 *     Other requests still work on a subscribed connection; their answers keep request order,
 *     with Delivery lines in between. A second Subscribe is refused (one stream per connection).
 *   Ack {up_to: seq, client_id?}   (REST: POST /clients/{c}/ack)
 *     -> {"type":"AckResponse","client_id","acked_up_to","remaining"}   drops deliveries up to
 *        `up_to`; client_id defaults to the subscribed client (on a subscribed connection it may
 *        only name that client), and is required on a connection that is not subscribed.
 *   The stream ends when the connection closes. The client's half-close does not end it (so
 *   `echo '{"type":"Subscribe","client_id":"bob"}' | nc host 8080` tails bob's queue).
 *   Backpressure: while more than STREAM_MAX_BUFFERED_BYTES are unsent the stream waits; a
 *   consumer that takes nothing for STREAM_STALL_TIMEOUT is sent
 *     {"type":"Error","message":"Slow consumer: ...","code":"slow_consumer"}
 *   and the connection is ended (the line may be lost behind the unread data). A store failure
 *   ends it the same way with code "internal". On server shutdown the stream stops and the
 *   connection is ended (EOF). In every case: reconnect and Subscribe with after = the last seq
 *   received, and nothing is lost or repeated.
 *   Keep-alive: no ping frames (legacy line readers would not expect them); the server enables
 *   TCP keep-alive probes after STREAM_PING_INTERVAL of silence, and the idle timeout no longer
 *   applies to a subscribed connection.
 *
 * Authentication (AUTH=jwt), the twin of the REST door's bearer token:
 *   Authenticate {token: JWT}
 *     -> {"type":"Authenticated","client_id","expires_at"}   the connection acts as the token's
 *        client until the token expires; Authenticate again with a fresh token of the same client
 *        to extend it (another client's token is refused: one client per connection). Every other
 *        request before it, or after the token expired, is refused with code "unauthenticated";
 *        what the client may do is the REST door's rule (src/auth/access-policy.ts), refused with
 *        code "forbidden". A subscribed connection whose token expires gets
 *        {"type":"Error","message":"Token expired: ...","code":"unauthenticated"} and is ended.
 *     With AUTH=none, Authenticate is refused (code "bad_request"): no token is needed.
 *
 * Errors are {"type":"Error","message":...}:
 *   "Invalid message format: <detail>"  not JSON, not an object, an unknown `type`, a missing
 *                                       or mistyped field (the detail names it), or too large
 *   "Invalid message type for server"   a response type sent as a request
 *   "Failed to <operation>: <reason>"   the service refused, e.g. "Failed to join group:
 *                                       Group not found: g"; "Internal server error" when it failed
 * The first two are exactly {type, message}. A refusal also carries `code`, the error code of
 * the REST door (src/errors.ts: group_not_found, not_member, stale_epoch, invalid_key_package,
 * invalid_message, internal, ...), and that error's details, e.g.
 *   {"type":"Error","message":"Failed to commit: Stale epoch: ...","code":"stale_epoch","current_epoch":5}
 *   {"type":"Error","message":"Failed to store key packages: ...","code":"invalid_key_package","check":"signature"}
 * Legacy clients compare `type` and the fields they know, so these additive fields are safe.
 */
import type { Logger } from 'pino'
import type { TokenVerifier } from '../auth/token-verifier.js'
import { isServiceError, type ErrorCode } from '../errors.js'
import { MAX_CLIENT_LIST_LIMIT } from '../service/delivery-service.js'
import { clientDeletedView, clientGroupsView, groupView, keyPackageView, messagesView, toByteArray } from '../schemas/views.js'
import * as S from '../schemas/tcp.js'
import type { ErrorResponse, GroupDetailsResponse, GroupResponse, ServiceErrorResponse, TcpResponse } from '../schemas/tcp.js'
import { describeValue, unknownVariant } from './describe.js'
import type { Frame } from './framing.js'
import { authOperations } from './auth-operations.js'
import { mlsOperations } from './mls-operations.js'
import { op, success, type Operation, type OperationContext, type Session } from './operation.js'
import { streamOperations } from './stream-operations.js'

export interface ProtocolOptions extends OperationContext {
  readonly log: Pick<Logger, 'error'>
  /** AUTH=jwt: every request but Authenticate needs a connection authenticated by a token this verified. */
  readonly verifier?: TokenVerifier
}

export interface Protocol {
  /** Never rejects: every failure becomes an Error response. `session` is the connection the frame came on. */
  answer(frame: Frame, session: Session): Promise<TcpResponse>
}

export const errorResponse = (message: string): ErrorResponse => ({ type: 'Error', message })
export const invalidFormat = (detail: string): ErrorResponse => errorResponse(`Invalid message format: ${detail}`)
export const INVALID_TYPE_FOR_SERVER = 'Invalid message type for server'

/** A refusal: the legacy message, then the code and the details (which never replace those three). */
export function refusal(message: string, code: ErrorCode, details: Readonly<Record<string, unknown>> = {}): ServiceErrorResponse {
  const extra = Object.entries(details).filter(([key]) => key !== 'type' && key !== 'message' && key !== 'code')
  return { type: 'Error', message, code, ...Object.fromEntries(extra) }
}

export function createProtocol(options: ProtocolOptions): Protocol {
  const { service, log, validation, access, verifier } = options
  const fullGroup = (group: Parameters<typeof groupView>[0]): GroupDetailsResponse => ({ type: 'GroupResponse', ...groupView(group) })
  // The original's GroupResponse carried only these two fields.
  const legacyGroup = (group: Parameters<typeof groupView>[0]): GroupResponse => {
    const { group_id, members } = groupView(group)
    return { type: 'GroupResponse', group_id, members }
  }

  // A Map, not an object: `type` is user input and may be "__proto__" or "constructor".
  const operations = new Map<string, Operation>([
    op(S.StoreKeyPackageRequestSchema, 'store key package', async (r, session) => {
      access.self(session.caller, r.client_id, 'add KeyPackages to its pool')
      await service.storeKeyPackages(r.client_id, [Uint8Array.from(r.key_package)], { validation })
      return success(`KeyPackage stored for ${r.client_id}`)
    }),
    op(S.FetchKeyPackageRequestSchema, 'fetch key package', async (r) => {
      const record = await service.fetchKeyPackage(r.client_id, { ciphersuite: r.ciphersuite })
      if (!record) return { type: 'KeyPackageResponse', client_id: r.client_id, key_package: null }
      const view = keyPackageView(r.client_id, record, toByteArray)
      // Opaque legacy data keeps the original's exact shape; an MLS KeyPackage also names its ref, suite and kind.
      return record.legacy ? { type: 'KeyPackageResponse', client_id: r.client_id, key_package: view.key_package } : { type: 'KeyPackageResponse', ...view }
    }),
    op(S.ListKeyPackagesRequestSchema, 'list key packages', async (r) => {
      const page = await service.listKeyPackageClients({ after: r.after, limit: r.limit })
      return { type: 'KeyPackageListResponse', clients: page.clients, ...(page.nextAfter === undefined ? {} : { next_after: page.nextAfter }) }
    }),
    op(S.CreateGroupRequestSchema, 'create group', async (r, session) => {
      access.self(session.caller, r.creator_id, 'create a group as its creator_id')
      return legacyGroup(await service.createGroup(r.group_id, r.creator_id, { epoch: r.epoch }))
    }),
    op(S.JoinGroupRequestSchema, 'join group', async (r, session) => {
      await access.member(session.caller, r.group_id, 'add members')
      return legacyGroup(await service.joinGroup(r.group_id, r.client_id))
    }),
    op(S.RelayMessageRequestSchema, 'relay message', async (r, session) => {
      access.self(session.caller, r.sender_id, 'send as its sender_id')
      const message = Uint8Array.from(r.message)
      await service.relayMessage({ groupId: r.group_id, senderId: r.sender_id, message, messageType: r.message_type }, { validation })
      return success('Message relayed successfully')
    }),
    op(S.GetGroupRequestSchema, 'get group', async (r, session) => {
      const checked = await access.member(session.caller, r.group_id, 'read it')
      return fullGroup(checked ?? await service.getGroup(r.group_id))
    }),
    op(S.LeaveGroupRequestSchema, 'leave group', async (r, session) => {
      await access.selfOrMember(session.caller, r.client_id, r.group_id, 'remove others')
      return fullGroup(await service.leaveGroup(r.group_id, r.client_id))
    }),
    op(S.ReadMessagesRequestSchema, 'read messages', async (r, session) => {
      await access.member(session.caller, r.group_id, "read the group's messages")
      const after = r.after ?? 0
      return { type: 'MessagesResponse', ...messagesView(r.group_id, await service.readMessages(r.group_id, after, r.limit), after, toByteArray) }
    }),
    op(S.DeleteGroupRequestSchema, 'delete group', async (r, session) => {
      await access.member(session.caller, r.group_id, 'delete it')
      await service.deleteGroup(r.group_id)
      return success(`Group deleted: ${r.group_id}`)
    }),
    op(S.DeleteKeyPackagesRequestSchema, 'delete key packages', async (r, session) => {
      access.self(session.caller, r.client_id, 'delete its KeyPackages')
      const count = await service.deleteKeyPackages(r.client_id)
      return success(`Deleted ${count} KeyPackage(s) for ${r.client_id}`)
    }),
    op(S.ListClientGroupsRequestSchema, 'list client groups', async (r, session) => {
      access.self(session.caller, r.client_id, 'list its groups')
      const page = await service.listClientGroups(r.client_id, { after: r.after, limit: r.limit ?? MAX_CLIENT_LIST_LIMIT })
      return { type: 'ClientGroupsResponse', ...clientGroupsView(r.client_id, page) }
    }),
    op(S.DeleteClientRequestSchema, 'delete client', async (r, session) => {
      access.self(session.caller, r.client_id, 'delete it')
      return { type: 'ClientDeletedResponse', ...clientDeletedView(r.client_id, await service.deleteClient(r.client_id)) }
    }),
    ...mlsOperations(options),
    ...streamOperations(options),
    ...authOperations(verifier),
  ])
  const requestTypes = [...operations.keys()]

  async function answerValue(request: unknown, session: Session): Promise<TcpResponse> {
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
    if (verifier && type !== 'Authenticate') {
      const refused = unauthenticated(operation, session)
      if (refused) return refused
    }
    try {
      const result = operation.run(request, session)
      return typeof result === 'string' ? invalidFormat(result) : await result
    } catch (err) {
      // A client's mistake, or the store unreachable (503 `unavailable`, as REST answers it): said as it is.
      if (isServiceError(err) && (err.status < 500 || err.code === 'unavailable')) return refusal(`Failed to ${operation.what}: ${err.message}`, err.code, err.details)
      log.error({ err, type }, 'TCP request failed')
      // As on REST, the details of a 5xx stay in the log.
      return refusal(`Failed to ${operation.what}: Internal server error`, 'internal')
    }
  }

  /** AUTH=jwt: a connection speaks for a client only after Authenticate, and only while its token lasts. */
  function unauthenticated(operation: Operation, session: Session): ServiceErrorResponse | undefined {
    const caller = session.caller
    if (caller === null) return refusal(`Failed to ${operation.what}: send {"type":"Authenticate","token":"<JWT>"} first (AUTH=jwt)`, 'unauthenticated')
    if (Date.now() >= caller.expiresAt) return refusal(`Failed to ${operation.what}: the token has expired; Authenticate again with a new one`, 'unauthenticated')
    return undefined
  }

  async function answerFrame(frame: Frame, session: Session): Promise<TcpResponse> {
    switch (frame.kind) {
      case 'value':
        return answerValue(frame.value, session)
      case 'invalid':
        return invalidFormat(frame.detail)
      case 'too_large':
        return invalidFormat(`request larger than ${frame.limit} bytes`)
    }
  }

  return {
    async answer(frame, session) {
      const response = await answerFrame(frame, session)
      // The legacy Error of a malformed request has no code: as on REST, it is a bad request.
      if (response.type === 'Error') service.metrics.rejected('tcp', 'code' in response ? response.code : 'bad_request')
      return response
    },
  }
}
