import { Type } from 'typebox'
import { CONTENT_TYPES } from '../storage/store.js'
import { DEFAULT_READ_LIMIT, MAX_READ_LIMIT } from '../service/delivery-service.js'
import { Base64Schema, IdSchema, MessageTypeSchema } from './common.js'
import { epochSchema } from './groups.js'

export const RelayBodySchema = Type.Object(
  {
    sender_id: IdSchema,
    message: Base64Schema,
    message_type: Type.Optional(MessageTypeSchema),
  },
  { additionalProperties: false, description: 'message_type is derived from MLS bytes; a declared type that contradicts them is a 400' },
)

export const RelayReplySchema = Type.Object({
  group_id: IdSchema,
  seq: Type.Integer({ description: 'Position in the group: 1, 2, 3, … with no gaps' }),
  epoch: epochSchema("The group's epoch after this message"),
  message_type: MessageTypeSchema,
})

export const CommitBodySchema = Type.Object(
  {
    sender_id: IdSchema,
    commit: Base64Schema,
    welcome: Type.Optional(Base64Schema),
    group_info: Type.Optional(Base64Schema),
    ratchet_tree: Type.Optional(Base64Schema),
    welcome_recipients: Type.Optional(Type.Array(IdSchema, { minItems: 1, maxItems: 10000, description: 'Route the Welcome to these clients instead of by its KeyPackageRefs' })),
  },
  { additionalProperties: false },
)

export const PageQuerySchema = Type.Object(
  {
    after: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'Return entries with seq greater than this' }),
    limit: Type.Integer({
      minimum: 1,
      maximum: MAX_READ_LIMIT,
      default: DEFAULT_READ_LIMIT,
      description: 'At most this many; a page also holds at most MAX_MESSAGE_BYTES of message data (always at least one), so read on with `after` = the last seq until a page is empty',
    }),
  },
  { additionalProperties: false },
)

/** The longest a read of a client's queue may wait for a delivery (`wait`), in seconds. */
export const MAX_WAIT_SECONDS = 60

export const DeliveriesQuerySchema = Type.Object(
  {
    ...PageQuerySchema.properties,
    wait: Type.Integer({
      minimum: 0,
      maximum: MAX_WAIT_SECONDS,
      default: 0,
      description: `Long polling: when nothing is queued after \`after\`, wait up to this many seconds (at most ${MAX_WAIT_SECONDS}) for a delivery and answer as soon as one is queued; an empty page when none came. 0 answers at once`,
    }),
  },
  { additionalProperties: false },
)

const NullableContentType = Type.Union([Type.Enum([...CONTENT_TYPES]), Type.Null()], { description: 'Read from the MLS bytes; null for opaque legacy bytes' })

export const StoredMessageSchema = Type.Object({
  seq: Type.Integer(),
  sender_id: IdSchema,
  message_type: MessageTypeSchema,
  epoch: Type.Union([Type.Integer(), Type.Null()], { description: 'The epoch the MLS message carries; null for Welcomes and legacy bytes' }),
  content_type: NullableContentType,
  message: Base64Schema,
  received_at: Type.String({ format: 'date-time' }),
})

export const MessagesReplySchema = Type.Object({
  group_id: IdSchema,
  messages: Type.Array(StoredMessageSchema, { description: 'In seq order' }),
  gap: Type.Optional(Type.Object({
    missed_from: Type.Integer({ description: 'The first seq asked for (after + 1) that the log no longer keeps' }),
    first_available_seq: Type.Integer({ description: 'The oldest seq the log keeps (the next seq when it keeps none)' }),
  }, { description: 'GROUP_LOG_MAX_AGE dropped messages after `after`: the page starts at first_available_seq' })),
})

export const WelcomesReplySchema = Type.Object({
  client_id: IdSchema,
  welcomes: Type.Array(Type.Object({
    seq: Type.Integer({ description: 'Position in this client\'s Welcome inbox' }),
    group_id: IdSchema,
    sender_id: IdSchema,
    welcome: Base64Schema,
    received_at: Type.String({ format: 'date-time' }),
  })),
})

export const GroupInfoReplySchema = Type.Object({
  group_id: IdSchema,
  epoch: Type.Integer(),
  group_info: Base64Schema,
  ratchet_tree: Type.Union([Base64Schema, Type.Null()]),
})

export const GapSchema = Type.Object({
  missed_from: Type.Integer({ description: 'The first seq the client asked for that retention dropped' }),
  first_available_seq: Type.Integer({ description: 'The oldest seq still queued' }),
}, { description: 'Retention dropped deliveries this client never acknowledged' })

export const DeliverySchema = Type.Object({
  seq: Type.Integer({ description: "Position in the client's queue: 1, 2, 3, … across all its groups" }),
  group_id: IdSchema,
  group_seq: Type.Integer({ description: 'The seq of the message in its group (for a Welcome: of its Commit)' }),
  sender_id: IdSchema,
  kind: Type.Enum(['message', 'welcome']),
  message_type: MessageTypeSchema,
  epoch: Type.Union([Type.Integer(), Type.Null()]),
  content_type: NullableContentType,
  message: Base64Schema,
  received_at: Type.String({ format: 'date-time' }),
})

export const DeliveriesReplySchema = Type.Object({
  client_id: IdSchema,
  deliveries: Type.Array(DeliverySchema, { description: 'In seq order' }),
  next_after: Type.Integer({ description: 'Pass as `after` to read on' }),
  gap: Type.Optional(GapSchema),
})

export const AckBodySchema = Type.Object(
  { up_to: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Drop every delivery up to this seq' }) },
  { additionalProperties: false },
)

export const AckReplySchema = Type.Object({
  client_id: IdSchema,
  acked_up_to: Type.Integer(),
  remaining: Type.Integer({ description: 'Deliveries still queued' }),
})

export const StreamQuerySchema = Type.Object(
  {
    after: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, default: 0, description: 'Replay deliveries with seq greater than this, then stream' }),
    access_token: Type.Optional(Type.String({ minLength: 1, maxLength: 16384, description: 'AUTH=jwt: the bearer token, for clients that cannot set an Authorization header on a WebSocket (browsers); RFC 6750 §2.3' })),
  },
  { additionalProperties: false },
)
