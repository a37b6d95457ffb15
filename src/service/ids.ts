import { ServiceError } from '../errors.js'

export const MAX_ID_LENGTH = 256

/** Client and group ids: non-empty strings of at most 256 characters, nothing else. */
export function assertId(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new ServiceError('invalid_id', `${field} must be a non-empty string of at most ${MAX_ID_LENGTH} characters`)
  }
}
