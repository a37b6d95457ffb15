import { ServiceError } from '../errors.js'

export const MAX_ID_LENGTH = 256

/**
 * NUL cannot be stored in a database text column, and a lone UTF-16 surrogate is replaced by
 * U+FFFD on its way into UTF-8, so two different ids would become one: neither is an id.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Client and group ids: non-empty strings of at most 256 characters of well-formed Unicode without
 * NUL. Characters are code points, as the request schemas count them (an emoji is one character,
 * two UTF-16 units), so both checks agree on which ids are too long.
 */
export function assertId(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || (value.length > MAX_ID_LENGTH && codePoints(value) > MAX_ID_LENGTH)) {
    throw new ServiceError('invalid_id', `${field} must be a non-empty string of at most ${MAX_ID_LENGTH} characters`)
  }
  if (UNSTORABLE.test(value)) {
    throw new ServiceError('invalid_id', `${field} must be well-formed Unicode without NUL characters`)
  }
}

/** The string's length in code points (a lone surrogate counts as one). */
function codePoints(value: string): number {
  let count = 0
  for (const _ of value) count++
  return count
}
