/**
 * One table of coded errors. The HTTP door answers `{ error: code, message }` with the
 * status from this table; the TCP door answers its legacy `Error` frame with the message.
 */
export const ERRORS = {
  bad_request: { status: 400, message: 'Bad request' },
  invalid_id: { status: 400, message: 'Invalid id' },
  invalid_base64: { status: 400, message: 'Invalid base64' },
  invalid_key_package: { status: 400, message: 'Invalid KeyPackage' },
  invalid_message: { status: 400, message: 'Invalid MLS message' },
  unauthenticated: { status: 401, message: 'A valid bearer token is required' },
  not_member: { status: 403, message: 'Sender not in group' },
  forbidden: { status: 403, message: 'Not allowed for this client' },
  forbidden_origin: { status: 403, message: 'Origin not allowed' },
  not_found: { status: 404, message: 'Not found' },
  group_not_found: { status: 404, message: 'Group not found' },
  member_not_found: { status: 404, message: 'Member not found' },
  key_package_not_found: { status: 404, message: 'No KeyPackage available' },
  group_info_not_found: { status: 404, message: 'No GroupInfo stored' },
  method_not_allowed: { status: 405, message: 'Method not allowed' },
  request_timeout: { status: 408, message: 'Request timeout' },
  expectation_failed: { status: 417, message: 'Expectation failed' },
  group_exists: { status: 409, message: 'Group already exists' },
  stale_epoch: { status: 409, message: 'Stale epoch' },
  payload_too_large: { status: 413, message: 'Payload too large' },
  unsupported_media_type: { status: 415, message: 'Unsupported media type' },
  idempotency_key_reused: { status: 422, message: 'Idempotency-Key reused for another message' },
  upgrade_required: { status: 426, message: 'Upgrade required' },
  rate_limited: { status: 429, message: 'Too many requests' },
  headers_too_large: { status: 431, message: 'Request header fields too large' },
  internal: { status: 500, message: 'Internal server error' },
  unavailable: { status: 503, message: 'Service unavailable' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERRORS

/** A failure the client can act on; never carries internal details. */
export class ServiceError extends Error {
  readonly code: ErrorCode
  readonly status: number
  /** Extra fields that go into the HTTP error body (e.g. `current_epoch`). */
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string = ERRORS[code].message, details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'ServiceError'
    this.code = code
    this.status = ERRORS[code].status
    this.details = details
  }
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof ServiceError
}
