import { Type, type Static } from 'typebox'
import { Base64Schema, IdSchema, MessageTypeSchema } from './common.js'

/**
 * What a client may send on its live stream (GET /clients/{client}/stream), one JSON text
 * frame each. Every frame is answered on the same socket, in the order the frames came.
 */
export const StreamAckFrameSchema = Type.Object(
  {
    type: Type.Literal('ack'),
    up_to: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Drop every delivery up to this seq' }),
  },
  { additionalProperties: false },
)
export type StreamAckFrame = Static<typeof StreamAckFrameSchema>

export const StreamSendFrameSchema = Type.Object(
  {
    type: Type.Literal('send'),
    id: Type.Optional(Type.Union([Type.String({ maxLength: 256 }), Type.Integer()], { description: 'Echoed in the answer, to match answers to sends' })),
    group_id: IdSchema,
    message: Base64Schema,
    message_type: Type.Optional(MessageTypeSchema),
    idempotency_key: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'As the Idempotency-Key header of POST /groups/{group}/messages' })),
  },
  { additionalProperties: false, description: 'Relay a message as the stream\'s client, exactly as POST /groups/{group}/messages' },
)
export type StreamSendFrame = Static<typeof StreamSendFrameSchema>

/** Frame types a client may send; anything else is answered with an error frame. */
export const STREAM_FRAME_SCHEMAS = { ack: StreamAckFrameSchema, send: StreamSendFrameSchema } as const
