import { Type, type Static } from 'typebox'
import { MESSAGE_TYPES } from '../storage/store.js'
import { MAX_ID_LENGTH } from '../service/ids.js'

export const IdSchema = Type.String({ minLength: 1, maxLength: MAX_ID_LENGTH, description: `Client or group id: 1 to ${MAX_ID_LENGTH} characters` })

/**
 * Standard base64 (RFC 4648 §4) with padding, not empty. Non-empty is part of the pattern, not a
 * `minLength`: Ajv counts a string's length by walking all of it (code points), ~2 µs on a
 * 1.4 KB message, more than the rest of the body's validation.
 */
export const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)$'
export const Base64Schema = Type.String({ pattern: BASE64_PATTERN, contentEncoding: 'base64', description: 'Standard base64 with padding, not empty' })

export const MessageTypeSchema = Type.Enum([...MESSAGE_TYPES], { description: 'The original service\'s message types' })

export const ErrorSchema = Type.Object(
  {
    error: Type.String({ description: 'Stable machine-readable code, e.g. group_not_found' }),
    message: Type.String({ description: 'What is wrong, for a person' }),
  },
  { additionalProperties: true, description: 'Every error answers in this shape' },
)
export type ErrorBody = Static<typeof ErrorSchema>

export const ClientParamsSchema = Type.Object({ client: IdSchema })
export const GroupParamsSchema = Type.Object({ group: IdSchema })
export const GroupMemberParamsSchema = Type.Object({ group: IdSchema, client: IdSchema })

/** Statuses any API route may answer: 401 with AUTH=jwt, 429 and 503 on a connection beyond the connection limits (503 also while a database store is unreachable). */
const ALWAYS_POSSIBLE = [401, 429, 503] as const
type AlwaysPossible = (typeof ALWAYS_POSSIBLE)[number]

/**
 * Error responses by status, for the API's route schemas. Every such route reads or writes the
 * store, so it may answer 503 while a database store is unreachable; with AUTH=jwt it needs a
 * bearer token (401); and on a connection beyond MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP or
 * CONNECTION_RATE_LIMIT any request is answered 503 or 429: all three are always declared.
 * (The operations routes use `errorResponse`: they are answered even on such a connection.)
 */
export function errorResponses<const S extends readonly number[]>(...given: S): Record<S[number] | AlwaysPossible, typeof ErrorSchema> {
  const statuses = [...new Set([...given, ...ALWAYS_POSSIBLE])].sort((a, b) => a - b)
  return Object.fromEntries(statuses.map((s) => [s, errorResponse(s)])) as unknown as Record<S[number] | AlwaysPossible, typeof ErrorSchema>
}

const ERROR_DESCRIPTIONS: Readonly<Record<number, string>> = {
  400: 'Bad input; the message names the field',
  401: 'AUTH=jwt: no bearer token, or one that does not verify (error "unauthenticated", with a WWW-Authenticate header)',
  403: 'Not allowed: the sender is not a member ("not_member"), or the token\'s client may not do this ("forbidden")',
  404: 'No such resource',
  409: 'Conflict with the current state',
  413: 'Body larger than MAX_MESSAGE_BYTES',
  415: 'Unsupported Content-Type',
  422: 'The Idempotency-Key was used for another message (error "idempotency_key_reused", with the seq it stands for)',
  426: 'Not a WebSocket handshake (error "upgrade_required")',
  429: 'Too many requests (error "rate_limited", with retry_after in seconds and a Retry-After header): a limit of the route, or a connection beyond MAX_CONNECTIONS_PER_IP or CONNECTION_RATE_LIMIT (then closed)',
  503: 'The database (or, with AUTH_JWKS_URL, the token issuer\'s keys) cannot be reached, or the instance has MAX_CONNECTIONS open (then with retry_after and Retry-After, and the connection closed) (error "unavailable"); retry later',
}

/** The error response of one status, described. */
export function errorResponse(status: number): typeof ErrorSchema {
  return { ...ErrorSchema, description: ERROR_DESCRIPTIONS[status] ?? 'Error' } as typeof ErrorSchema
}
