import { Type } from 'typebox'
import { MAX_CLIENT_LIST_LIMIT } from '../service/delivery-service.js'
import { Base64Schema, IdSchema } from './common.js'

export const MAX_BATCH = 1000

export const StoreKeyPackagesBodySchema = Type.Object(
  {
    key_package: Type.Optional(Base64Schema),
    key_packages: Type.Optional(Type.Array(Base64Schema, { minItems: 1, maxItems: MAX_BATCH })),
  },
  { additionalProperties: false, description: 'Exactly one of key_package or key_packages' },
)

export const StoreKeyPackagesReplySchema = Type.Object({
  client_id: IdSchema,
  stored: Type.Integer({ description: 'How many KeyPackages this request stored' }),
  available: Type.Integer({ description: 'How many the client now has available' }),
})

export const KeyPackageReplySchema = Type.Object({
  client_id: IdSchema,
  key_package: Base64Schema,
  key_package_ref: Type.String({ description: 'Hex KeyPackageRef (RFC 9420 §5.2); a SHA-256 of the bytes for legacy data' }),
  ciphersuite: Type.Union([Type.Integer(), Type.Null()], { description: 'null for opaque legacy data' }),
  last_resort: Type.Boolean({ description: 'A last-resort KeyPackage is handed out only when no other is left, and kept' }),
})

export const ClaimQuerySchema = Type.Object(
  { ciphersuite: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Only a KeyPackage of this ciphersuite' })) },
  { additionalProperties: false },
)

export const KeyPackageRefParamsSchema = Type.Object({
  client: IdSchema,
  ref: Type.String({ pattern: '^[0-9a-fA-F]{2,128}$', description: 'Hex KeyPackageRef' }),
})

export const KeyPackageCountReplySchema = Type.Object({
  client_id: IdSchema,
  total: Type.Integer({ description: 'KeyPackages available (not expired)' }),
  by_ciphersuite: Type.Record(Type.String(), Type.Integer(), { description: 'Available MLS KeyPackages by ciphersuite id' }),
  last_resort: Type.Integer(),
  legacy: Type.Integer({ description: 'Opaque legacy KeyPackages (0 or 1)' }),
})

export const KeyPackageListQuerySchema = Type.Object(
  {
    after: Type.Optional({ ...IdSchema, description: 'Only clients after this id (the `next_after` of the page before)' }),
    limit: Type.Integer({ minimum: 1, maximum: MAX_CLIENT_LIST_LIMIT, default: MAX_CLIENT_LIST_LIMIT, description: 'At most this many clients' }),
  },
  { additionalProperties: false },
)

export const KeyPackageListReplySchema = Type.Object({
  clients: Type.Array(IdSchema, { description: 'Clients with at least one KeyPackage to hand out, in code point order (the order of their UTF-8 bytes)' }),
  next_after: Type.Optional({ ...IdSchema, description: 'There are more: ask again with `after` set to this (the last client of this page); absent on the last page' }),
})
