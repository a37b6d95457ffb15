import { Type } from 'typebox'
import { IdSchema } from './common.js'

export const epochSchema = (description: string) => Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description })

export const CreateGroupBodySchema = Type.Object(
  { group_id: IdSchema, creator_id: IdSchema, epoch: Type.Optional(epochSchema('The MLS epoch the group is at now (default 0)')) },
  { additionalProperties: false },
)

export const JoinGroupBodySchema = Type.Object({ client_id: IdSchema }, { additionalProperties: false })

export const GroupSchema = Type.Object({
  group_id: IdSchema,
  creator_id: IdSchema,
  members: Type.Array(IdSchema, { description: 'Members in the order they joined; the creator first' }),
  next_seq: Type.Integer({ description: 'The seq the next accepted message gets' }),
  epoch: epochSchema('The current epoch: the one the next Commit must carry'),
  created_at: Type.String({ format: 'date-time' }),
})
