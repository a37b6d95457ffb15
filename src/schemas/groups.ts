import { Type } from 'typebox'
import { IdSchema } from './common.js'

export const CreateGroupBodySchema = Type.Object(
  { group_id: IdSchema, creator_id: IdSchema },
  { additionalProperties: false },
)

export const JoinGroupBodySchema = Type.Object({ client_id: IdSchema }, { additionalProperties: false })

export const GroupSchema = Type.Object({
  group_id: IdSchema,
  creator_id: IdSchema,
  members: Type.Array(IdSchema, { description: 'Members in the order they joined; the creator first' }),
  next_seq: Type.Integer({ description: 'The seq the next accepted message gets' }),
  created_at: Type.String({ format: 'date-time' }),
})
