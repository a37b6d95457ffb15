import { Type } from 'typebox'
import { MAX_CLIENT_LIST_LIMIT } from '../service/delivery-service.js'
import { IdSchema } from './common.js'

export const ClientGroupsQuerySchema = Type.Object(
  {
    after: Type.Optional({ ...IdSchema, description: 'Only groups after this id (the `next_after` of the page before)' }),
    limit: Type.Integer({ minimum: 1, maximum: MAX_CLIENT_LIST_LIMIT, default: MAX_CLIENT_LIST_LIMIT, description: 'At most this many groups' }),
  },
  { additionalProperties: false },
)

export const ClientGroupsReplySchema = Type.Object({
  client_id: IdSchema,
  groups: Type.Array(IdSchema, { description: 'Groups the client is a member of, in code point order (the order of their UTF-8 bytes)' }),
  next_after: Type.Optional({ ...IdSchema, description: 'There are more: ask again with `after` set to this (the last group of this page); absent on the last page' }),
})

export const ClientDeletedReplySchema = Type.Object({
  client_id: IdSchema,
  groups_left: Type.Integer({ description: 'Groups it was a member of and is not any more (the groups stay)' }),
  key_packages_deleted: Type.Integer({ description: 'Its KeyPackages it could still hand out, of every kind (one-time, last-resort, legacy); expired ones are deleted too, uncounted' }),
  deliveries_deleted: Type.Integer({ description: 'Deliveries that were still in its queue' }),
  welcomes_deleted: Type.Integer({ description: 'Welcomes that were still in its inbox' }),
})
