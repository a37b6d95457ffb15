import { Type } from 'typebox'
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
  key_package_ref: Type.String({ description: 'Hex id of the KeyPackage' }),
})

export const KeyPackageListReplySchema = Type.Object({
  clients: Type.Array(IdSchema, { description: 'Clients with at least one KeyPackage, sorted' }),
})
