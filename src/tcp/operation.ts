import { Type, type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import type { AccessPolicy } from '../auth/access-policy.js'
import type { Caller } from '../auth/token-verifier.js'
import type { ValidationMode } from '../config.js'
import type { DeliveryService } from '../service/delivery-service.js'
import type { DeliverySink, Subscription } from '../service/subscription.js'
import { BytesSchema, type TcpResponse } from '../schemas/tcp.js'
import { describeSchemaError } from './describe.js'

/** What every request handler may use: the one service, and the limits of this door. */
export interface OperationContext {
  /** Also bounds the data in one ReadMessages or ReadWelcomes answer (its pageMaxBytes). */
  readonly service: DeliveryService
  /** How the service treats bytes that are not MLS; the original clients send placeholders, so 'permissive'. */
  readonly validation: ValidationMode
  /** Who may do what (AUTH=jwt); OPEN_ACCESS without authentication. */
  readonly access: AccessPolicy
}

/** What a request may know and change of the connection it came on. */
export interface Session {
  /** AUTH=jwt: whom this connection's Authenticate named (until its token expires); null before. */
  readonly caller: Caller | null
  /** Binds the connection to a verified token (again: a fresh token of the same client). */
  authenticate(caller: Caller): void
  /** The client whose queue this connection streams, once a Subscribe was answered. */
  readonly subscribedAs: string | undefined
  /**
   * Turns the connection into a live stream of `clientId`: `open` builds the Subscription
   * over this connection's sink (and may throw, leaving the connection as it was). The
   * stream starts once the answer to this request is written, so that answer comes first.
   */
  stream(clientId: string, open: (sink: DeliverySink) => Subscription): void
}

export interface Operation {
  /** "Failed to <what>: " prefixes a refusal of the service. */
  readonly what: string
  /** A string is the detail of an "Invalid message format" answer. */
  readonly run: (request: unknown, session: Session) => Promise<TcpResponse> | string
}

/** One request type: its compiled schema and what to do with a valid request. */
export function op<T extends TSchema & { properties: { type: { const: string } } }>(
  schema: T,
  what: string,
  handle: (request: Static<T>, session: Session) => Promise<TcpResponse>,
): [string, Operation] {
  const validator = Compile(schema)
  const fast = byteFieldsByHand(schema)
  const run = (request: unknown, session: Session) => {
    if (fast && fast.rest.Check(request) && fast.fields.every((field) => isByteArray((request as Record<string, unknown>)[field]))) {
      return handle(request as Static<T>, session)
    }
    return validator.Check(request) ? handle(request as Static<T>, session) : describeSchemaError(request, validator.Errors(request))
  }
  return [schema.properties.type.const, { what, run }]
}

/**
 * A relayed 1 KB message is an array of 1,000 numbers, and the compiled schema checks each
 * through generic code: several times the cost of this loop. So the required fields that are
 * exactly BytesSchema are checked by `isByteArray`, the rest by the schema without them; both
 * passing means the whole schema passes. Otherwise the full schema decides and words the error.
 */
function byteFieldsByHand(schema: TSchema & { properties: Record<string, TSchema>; required?: readonly string[] }) {
  const fields = Object.keys(schema.properties).filter((key) => schema.properties[key] === BytesSchema && schema.required?.includes(key))
  if (fields.length === 0) return undefined
  const properties = { ...schema.properties, ...Object.fromEntries(fields.map((key) => [key, Type.Unknown()])) }
  return { fields, rest: Compile({ ...schema, properties } as TSchema) }
}

/** BytesSchema by hand: a non-empty array of integers 0..255. */
export function isByteArray(value: unknown): boolean {
  if (!Array.isArray(value) || value.length === 0) return false
  for (let i = 0; i < value.length; i++) {
    const byte: unknown = value[i]
    if (typeof byte !== 'number' || (byte & 0xff) !== byte) return false
  }
  return true
}

export const success = (message: string) => ({ type: 'MessageResponse', success: true, message }) as const
