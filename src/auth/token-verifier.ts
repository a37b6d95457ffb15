import { createRemoteJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { ServiceError } from '../errors.js'
import { assertId } from '../service/ids.js'

/** How the service checks bearer tokens (AUTH=jwt): a shared secret or the issuer's published keys. */
export interface TokenOptions {
  /** HMAC secret (HS256, HS384, HS512), as its UTF-8 bytes. */
  readonly secret?: string
  /** Where the issuer publishes its public keys (a JWKS: RS*, PS*, ES*, EdDSA). */
  readonly jwksUrl?: string
  /** When set, a token's `iss` must be this. */
  readonly issuer?: string
  /** When set, a token's `aud` must be or include this. */
  readonly audience?: string
}

/** Who a verified token speaks for, and until when. */
export interface Caller {
  /** The token's `sub`: the client id it acts as. */
  readonly clientId: string
  /** When the service stops accepting the token: its `exp` plus the clock tolerance, in ms since the epoch. */
  readonly expiresAt: number
}

/** Clocks of the issuer and the service may differ by this much (RFC 7519 §4.1.4 allows "some small leeway"). */
export const CLOCK_TOLERANCE_SECONDS = 30
const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512']
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

/**
 * Verifies JWT bearer tokens (RFC 7519, RFC 6750): the signature, `exp` (required), `nbf`, and
 * `iss` and `aud` when configured; `sub` names the client. A bad token is 401
 * `unauthenticated`; keys that cannot be fetched are 503 `unavailable`, not the client's fault.
 */
export class TokenVerifier {
  readonly #key: Uint8Array | JWTVerifyGetKey
  readonly #algorithms: string[]
  readonly #issuer: string | undefined
  readonly #audience: string | undefined

  constructor(options: TokenOptions) {
    if ((options.secret === undefined) === (options.jwksUrl === undefined)) throw new Error('TokenVerifier needs exactly one of secret and jwksUrl')
    if (options.secret !== undefined) {
      this.#key = new TextEncoder().encode(options.secret)
      this.#algorithms = HMAC_ALGORITHMS
    } else {
      // Fetched on first use and cached; an unknown `kid` refetches, at most every 30 s.
      this.#key = createRemoteJWKSet(new URL(options.jwksUrl!), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 })
      this.#algorithms = PUBLIC_KEY_ALGORITHMS
    }
    this.#issuer = options.issuer
    this.#audience = options.audience
  }

  async verify(token: string): Promise<Caller> {
    let payload
    try {
      ;({ payload } = await jwtVerify(token, this.#key as Uint8Array, {
        algorithms: this.#algorithms,
        issuer: this.#issuer,
        audience: this.#audience,
        requiredClaims: ['sub', 'exp'],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }))
    } catch (err) {
      throw tokenError(err)
    }
    const clientId = payload.sub!
    try {
      assertId("the token's sub", clientId)
    } catch (err) {
      throw invalidToken((err as Error).message)
    }
    return { clientId, expiresAt: (payload.exp! + CLOCK_TOLERANCE_SECONDS) * 1000 }
  }
}

/** The client's token is bad (401), or the keys to check it could not be had (503). */
function tokenError(err: unknown): ServiceError {
  if (err instanceof errors.JWTExpired) return invalidToken('the token has expired')
  if (err instanceof errors.JWTClaimValidationFailed) return invalidToken(`the token's ${err.claim} claim is ${err.reason === 'missing' ? 'missing' : 'not accepted'}`)
  if (err instanceof errors.JWKSNoMatchingKey) return invalidToken("no key of the issuer matches the token's kid and alg")
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) return invalidToken("the token's alg is not accepted")
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalidToken('the token signature does not verify')
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JWKInvalid) return invalidToken('the token is not a well-formed JWT')
  return new ServiceError('unavailable', 'the keys to check tokens cannot be fetched now; retry later')
}

function invalidToken(message: string): ServiceError {
  return new ServiceError('unauthenticated', message)
}
