/**
 * Bearer tokens as an identity provider issues them (jose): HS256 with a shared secret, or ES256
 * with the public key published as a JWKS over real HTTP.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose'

export const TEST_SECRET = 'a test secret of at least 32 characters, never a real one'

export interface TokenClaims {
  /**
   * Seconds from now, at least (exp is counted from the next whole second, as jose counts whole
   * seconds): `-(CLOCK_TOLERANCE_SECONDS - 2)` is a token accepted for 2 s more at least, wherever
   * in the second it is made. Negative for a token already expired. Default one hour.
   */
  readonly expiresIn?: number
  /** Leave `exp` out entirely. */
  readonly noExpiry?: boolean
  readonly issuer?: string
  readonly audience?: string
  readonly extra?: JWTPayload
}

function claims(sub: string | undefined, options: TokenClaims): SignJWT {
  const now = Math.floor(Date.now() / 1000)
  const jwt = new SignJWT({ ...options.extra }).setIssuedAt(now)
  if (sub !== undefined) jwt.setSubject(sub)
  if (!options.noExpiry) jwt.setExpirationTime(Math.ceil(Date.now() / 1000) + (options.expiresIn ?? 3600))
  if (options.issuer) jwt.setIssuer(options.issuer)
  if (options.audience) jwt.setAudience(options.audience)
  return jwt
}

/** An HS256 token for `sub` (none when undefined). */
export function hmacToken(sub: string | undefined, options: TokenClaims & { secret?: string } = {}): Promise<string> {
  return claims(sub, options).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(options.secret ?? TEST_SECRET))
}

/** An identity provider: ES256 keys (test-key-1, test-key-2, …), the public ones served as a JWKS on a real port. */
export class JwksIssuer {
  readonly url: string
  readonly #server: Server
  readonly #privateKeys: CryptoKey[]
  /** How many times the JWKS was fetched. */
  fetches = 0

  private constructor(server: Server, privateKeys: CryptoKey[]) {
    this.#server = server
    this.#privateKeys = privateKeys
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
  }

  /**
   * `keys` key pairs, all published (two or more: a key rotation). `padBytes` adds a member of that
   * many bytes to the document; `chunked` sends it without Content-Length, in pieces; `delayMs`
   * answers that much later (a slow issuer: a token is being verified meanwhile).
   */
  static async start(keys = 1, document: { padBytes?: number; chunked?: boolean; delayMs?: number } = {}): Promise<JwksIssuer> {
    const pairs = await Promise.all(Array.from({ length: keys }, () => generateKeyPair('ES256')))
    const published = await Promise.all(pairs.map(async ({ publicKey }, i) => ({ ...(await exportJWK(publicKey)), kid: `test-key-${i + 1}`, alg: 'ES256', use: 'sig' })))
    const jwks = JSON.stringify({ keys: published, ...(document.padBytes ? { pad: 'x'.repeat(document.padBytes) } : {}) })
    let issuer: JwksIssuer | undefined
    const server = createServer(async (req, res) => {
      issuer!.fetches++
      if (document.delayMs) await new Promise((resolve) => setTimeout(resolve, document.delayMs))
      if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end()
      if (!document.chunked) return void res.writeHead(200, { 'content-type': 'application/json' }).end(jwks)
      res.writeHead(200, { 'content-type': 'application/json' })
      for (let i = 0; i < jwks.length; i += 16_384) res.write(jwks.slice(i, i + 16_384))
      res.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    issuer = new JwksIssuer(server, pairs.map((p) => p.privateKey))
    return issuer
  }

  /**
   * An ES256 token for `sub`, signed with published key number `key` (1 by default) under its
   * kid, or under another `kid`, or with no kid at all (`kid: null`).
   */
  sign(sub: string | undefined, options: TokenClaims & { kid?: string | null; key?: number } = {}): Promise<string> {
    const key = options.key ?? 1
    const kid = options.kid === undefined ? `test-key-${key}` : options.kid
    return claims(sub, options).setProtectedHeader(kid === null ? { alg: 'ES256' } : { alg: 'ES256', kid }).sign(this.#privateKeys[key - 1]!)
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
