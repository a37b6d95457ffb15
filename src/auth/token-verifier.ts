import { createRemoteJWKSet, customFetch, errors, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
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
  /** Where a JWKS that cannot be fetched is reported (at most every 10 s). */
  readonly log?: Pick<Logger, 'warn'>
}

/** Who a verified token speaks for, and until when. */
export interface Caller {
  /** The token's `sub`: the client id it acts as. */
  readonly clientId: string
  /** When the service stops accepting the token: its `exp` plus the clock tolerance, in ms since the epoch. */
  readonly expiresAt: number
}

/** The verifier AUTH=jwt asks for (one per process, shared by both doors and their cache); none with AUTH=none. */
export function tokenVerifier(config: Pick<Config, 'auth' | 'authJwtSecret' | 'authJwksUrl' | 'authJwtIssuer' | 'authJwtAudience'>, log?: Pick<Logger, 'warn'>): TokenVerifier | undefined {
  if (config.auth !== 'jwt') return undefined
  return new TokenVerifier({
    log,
    ...(config.authJwtSecret ? { secret: config.authJwtSecret } : { jwksUrl: config.authJwksUrl }),
    ...(config.authJwtIssuer ? { issuer: config.authJwtIssuer } : {}),
    ...(config.authJwtAudience ? { audience: config.authJwtAudience } : {}),
  })
}

/** Clocks of the issuer and the service may differ by this much (RFC 7519 §4.1.4 allows "some small leeway"). */
export const CLOCK_TOLERANCE_SECONDS = 30
/** The latest moment a JavaScript Date holds (ECMA-262 §21.4.1.1). */
const MAX_DATE_MS = 8.64e15

/** Verified tokens kept, so a client's every request does not pay a signature check (~140 µs with jose). */
export const VERIFIED_TOKEN_CACHE_SIZE = 10_000
/** A verified token is checked again after this long at most (as long as the issuer's keys are cached). */
export const VERIFIED_TOKEN_CACHE_MS = 10 * 60_000
const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512']
const PUBLIC_KEY_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519']

/**
 * Verifies JWT bearer tokens (RFC 7519, RFC 6750): the signature, `exp` (required), `nbf`, and
 * `iss` and `aud` when configured; `sub` names the client. A bad token is 401
 * `unauthenticated`; keys that cannot be fetched are 503 `unavailable`, not the client's fault.
 */
export class TokenVerifier {
  readonly #key: Uint8Array | JWTVerifyGetKey
  readonly #options: JWTVerifyOptions
  readonly #log: Pick<Logger, 'warn'> | undefined
  #lastReport = 0

  constructor(options: TokenOptions) {
    if ((options.secret === undefined) === (options.jwksUrl === undefined)) throw new Error('TokenVerifier needs exactly one of secret and jwksUrl')
    let algorithms: string[]
    if (options.secret !== undefined) {
      this.#key = new TextEncoder().encode(options.secret)
      algorithms = HMAC_ALGORITHMS
    } else {
      // Fetched on first use and cached; an unknown `kid` refetches, at most every 30 s.
      this.#key = createRemoteJWKSet(new URL(options.jwksUrl!), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000, [customFetch]: fetchAtMost(MAX_JWKS_BYTES) })
      algorithms = PUBLIC_KEY_ALGORITHMS
    }
    this.#options = {
      algorithms,
      issuer: options.issuer,
      audience: options.audience,
      requiredClaims: ['sub', 'exp'],
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    }
    this.#log = options.log
  }

  /**
   * Verified tokens by their text, in the order they were verified, each until its expiry or
   * VERIFIED_TOKEN_CACHE_MS, whichever comes first. Only the issuer can make a token that
   * verifies, so no one else can fill this; refused tokens are never kept.
   */
  readonly #verified = new Map<string, { readonly caller: Caller; readonly until: number }>()

  /** How many verified tokens are kept (for tests and metrics). */
  get cachedTokens(): number {
    return this.#verified.size
  }

  async verify(token: string): Promise<Caller> {
    const now = Date.now()
    const hit = this.#verified.get(token)
    if (hit !== undefined) {
      if (now < hit.until) return hit.caller
      this.#verified.delete(token)
    }
    const caller = await this.#check(token)
    if (this.#verified.size >= VERIFIED_TOKEN_CACHE_SIZE) this.#verified.delete(this.#verified.keys().next().value!)
    this.#verified.set(token, { caller, until: Math.min(caller.expiresAt, now + VERIFIED_TOKEN_CACHE_MS) })
    return caller
  }

  async #check(token: string): Promise<Caller> {
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, this.#key as Uint8Array, this.#options))
    } catch (err) {
      if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw this.#refusal(err)
      payload = await this.#tryEach(token, err)
    }
    const clientId = payload.sub!
    try {
      assertId("the token's sub", clientId)
    } catch (err) {
      throw invalidToken((err as Error).message)
    }
    // jose accepts while the current whole second is below exp + tolerance (exp may have a fraction).
    // An exp beyond what a Date can hold ("never") is the last moment a Date can.
    return { clientId, expiresAt: Math.min(Math.ceil(payload.exp! + CLOCK_TOLERANCE_SECONDS) * 1000, MAX_DATE_MS) }
  }

  /**
   * A token without `kid` while the issuer publishes several keys of its alg (as during a key
   * rotation): each candidate in turn, as RFC 7515 §6 leaves key selection to the recipient.
   */
  async #tryEach(token: string, candidates: errors.JWKSMultipleMatchingKeys): Promise<JWTPayload> {
    for await (const key of candidates as unknown as AsyncIterable<CryptoKey>) {
      try {
        return (await jwtVerify(token, key, this.#options)).payload
      } catch (err) {
        if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw this.#refusal(err)
      }
    }
    throw invalidToken('the token signature does not verify')
  }

  #refusal(err: unknown): ServiceError {
    const refusal = tokenError(err)
    if (refusal.code === 'unavailable' && this.#log && Date.now() - this.#lastReport >= 10_000) {
      this.#lastReport = Date.now()
      this.#log.warn({ err }, 'The token issuer\'s keys (AUTH_JWKS_URL) cannot be fetched: requests with tokens answer 503')
    }
    return refusal
  }
}

/** A key set is a few kilobytes; a JWKS document larger than this is refused (and logged), not read into memory. */
export const MAX_JWKS_BYTES = 256 * 1024

/** fetch for jose's JWKS requests that reads at most `limit` bytes of the answer. */
function fetchAtMost(limit: number) {
  return async (url: string, init: RequestInit): Promise<Response> => {
    const response = await fetch(url, init)
    const tooLarge = () => new Error(`the JWKS document at AUTH_JWKS_URL is larger than ${limit} bytes`)
    if (Number(response.headers.get('content-length') ?? 0) > limit) {
      await response.body?.cancel()
      throw tooLarge()
    }
    const chunks: Uint8Array[] = []
    let size = 0
    // Leaving the loop early cancels the rest of the body.
    for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength
      if (size > limit) throw tooLarge()
      chunks.push(chunk)
    }
    return new Response(Buffer.concat(chunks), { status: response.status, statusText: response.statusText, headers: response.headers })
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
