import { Type } from 'typebox'
import { DEFAULT_READ_LIMIT, MAX_READ_LIMIT } from '../service/delivery-service.js'
import { Base64Schema, IdSchema, MessageTypeSchema } from './common.js'

export const RelayBodySchema = Type.Object(
  { sender_id: IdSchema, message: Base64Schema, message_type: MessageTypeSchema },
  { additionalProperties: false },
)

export const RelayReplySchema = Type.Object({
  group_id: IdSchema,
  seq: Type.Integer({ description: 'Position in the group: 1, 2, 3, … with no gaps' }),
})

export const ReadMessagesQuerySchema = Type.Object(
  {
    after: Type.Integer({ minimum: 0, default: 0, description: 'Return messages with seq greater than this' }),
    limit: Type.Integer({ minimum: 1, maximum: MAX_READ_LIMIT, default: DEFAULT_READ_LIMIT }),
  },
  { additionalProperties: false },
)

export const StoredMessageSchema = Type.Object({
  seq: Type.Integer(),
  sender_id: IdSchema,
  message_type: MessageTypeSchema,
  message: Base64Schema,
  received_at: Type.String({ format: 'date-time' }),
})

export const MessagesReplySchema = Type.Object({
  group_id: IdSchema,
  messages: Type.Array(StoredMessageSchema, { description: 'In seq order' }),
})
