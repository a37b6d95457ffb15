import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { SignJWT, UnsecuredJWT } from 'jose'
import { CLOCK_TOLERANCE_SECONDS, MAX_JWKS_BYTES, TokenVerifier, VERIFIED_TOKEN_CACHE_SIZE } from '../../src/auth/token-verifier.js'
import { ServiceError } from '../../src/errors.js'
import { hmacToken, JwksIssuer, TEST_SECRET } from '../helpers/tokens.js'

async function refusal(verifier: TokenVerifier, token: string): Promise<ServiceError> {
  try {
    await verifier.verify(token)
  } catch (err) {
    assert.ok(err instanceof ServiceError, `a ServiceError, not ${String(err)}`)
    return err
  }
  assert.fail('the token was accepted')
}

describe('TokenVerifier with a shared secret (HS256)', () => {
  const verifier = new TokenVerifier({ secret: TEST_SECRET, issuer: 'https://id.example.com', audience: 'mls-ds' })
  const valid = { issuer: 'https://id.example.com', audience: 'mls-ds' }

  test('a valid token names its client and when it stops being accepted', async () => {
    const caller = await verifier.verify(await hmacToken('alice', { ...valid, expiresIn: 600 }))
    assert.equal(caller.clientId, 'alice')
    const expected = (Math.floor(Date.now() / 1000) + 600 + CLOCK_TOLERANCE_SECONDS) * 1000
    assert.ok(Math.abs(caller.expiresAt - expected) <= 2000, `${caller.expiresAt} ≈ ${expected}`)
    // Any client id is a subject, however it looks.
    assert.equal((await verifier.verify(await hmacToken('__proto__', valid))).clientId, '__proto__')
  })

  test('every bad token is a 401 that says what is wrong', async () => {
    const cases: Array<[string, Promise<string>, RegExp]> = [
      ['expired', hmacToken('alice', { ...valid, expiresIn: -(CLOCK_TOLERANCE_SECONDS + 60) }), /expired/],
      ['no exp', hmacToken('alice', { ...valid, noExpiry: true }), /exp claim is missing/],
      ['no sub', hmacToken(undefined, valid), /sub claim is missing/],
      ['empty sub', hmacToken('', valid), /sub/],
      ['sub too long', hmacToken('x'.repeat(257), valid), /sub must be/],
      ['another secret', hmacToken('alice', { ...valid, secret: 'another secret of at least 32 characters!!' }), /signature/],
      ['another issuer', hmacToken('alice', { ...valid, issuer: 'https://evil.example.com' }), /iss claim is not accepted/],
      ['no audience', hmacToken('alice', { issuer: valid.issuer }), /aud claim is missing/],
      ['another audience', hmacToken('alice', { ...valid, audience: 'someone-else' }), /aud claim is not accepted/],
      ['not before a minute from now', new SignJWT({ sub: 'alice', ...valid, iss: valid.issuer, aud: valid.audience }).setExpirationTime('1h').setNotBefore(Math.floor(Date.now() / 1000) + 120).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(TEST_SECRET)), /nbf/],
      ['alg none', Promise.resolve(new UnsecuredJWT({ sub: 'alice', iss: valid.issuer, aud: valid.audience }).setExpirationTime('1h').encode()), /alg|well-formed/],
      ['not a JWT', Promise.resolve('hello.world.again'), /well-formed/],
      ['garbage', Promise.resolve('%%%'), /well-formed/],
    ]
    for (const [name, token, message] of cases) {
      const err = await refusal(verifier, await token)
      assert.equal(err.code, 'unauthenticated', name)
      assert.equal(err.status, 401, name)
      assert.match(err.message, message, name)
    }
  })

  test('a token signed with a public-key algorithm is not taken by a secret verifier', async () => {
    const issuer = await JwksIssuer.start()
    try {
      const err = await refusal(verifier, await issuer.sign('alice', valid))
      assert.equal(err.code, 'unauthenticated')
      assert.match(err.message, /alg/)
    } finally {
      await issuer.stop()
    }
  })
})

describe('TokenVerifier keeps verified tokens', () => {
  test('until they expire: a kept token is refused once it has', async () => {
    const verifier = new TokenVerifier({ secret: TEST_SECRET })
    // Accepted for 1.5 s more (within the clock tolerance).
    const token = await hmacToken('bob', { expiresIn: -(CLOCK_TOLERANCE_SECONDS - 1.5) })
    const caller = await verifier.verify(token)
    assert.equal(verifier.cachedTokens, 1)
    assert.equal(await verifier.verify(token), caller, 'the kept answer')
    await new Promise((resolve) => setTimeout(resolve, caller.expiresAt - Date.now() + 50))
    const err = await refusal(verifier, token)
    assert.match(err.message, /expired/)
    assert.equal(verifier.cachedTokens, 0)
  })

  test('never a refused one, and never more than the bound', async () => {
    const verifier = new TokenVerifier({ secret: TEST_SECRET })
    await refusal(verifier, await hmacToken('bob', { secret: 'another secret of at least 32 characters!!' }))
    await refusal(verifier, 'not.a.token')
    assert.equal(verifier.cachedTokens, 0)
    const now = Math.floor(Date.now() / 1000)
    const key = new TextEncoder().encode(TEST_SECRET)
    for (let i = 0; i <= VERIFIED_TOKEN_CACHE_SIZE; i++) {
      await verifier.verify(await new SignJWT({ sub: `client-${i}` }).setExpirationTime(now + 3600).setProtectedHeader({ alg: 'HS256' }).sign(key))
    }
    assert.equal(verifier.cachedTokens, VERIFIED_TOKEN_CACHE_SIZE)
  })
})

describe('TokenVerifier with an issuer JWKS (ES256) over HTTP', () => {
  let issuer: JwksIssuer
  let verifier: TokenVerifier
  before(async () => {
    issuer = await JwksIssuer.start()
    verifier = new TokenVerifier({ jwksUrl: issuer.url })
  })
  after(() => issuer.stop())

  test('tokens signed with the published key verify; the JWKS is fetched once and cached', async () => {
    for (const client of ['alice', 'bob', 'carol']) assert.equal((await verifier.verify(await issuer.sign(client))).clientId, client)
    assert.equal(issuer.fetches, 1)
  })

  test('an unknown kid is a 401, an HS256 token signed with the public key is not accepted (alg confusion)', async () => {
    const unknownKid = await refusal(verifier, await issuer.sign('alice', { kid: 'not-published' }))
    assert.equal(unknownKid.code, 'unauthenticated')
    assert.match(unknownKid.message, /no key of the issuer matches/)
    const hmac = await refusal(verifier, await hmacToken('alice'))
    assert.equal(hmac.code, 'unauthenticated')
    assert.match(hmac.message, /alg/)
  })

  test('when the JWKS cannot be fetched, a token is answered 503 unavailable, not 401, and the log says why', async () => {
    const gone = await JwksIssuer.start()
    const token = await gone.sign('alice')
    const warnings: Array<{ err: Error }> = []
    const unreachable = new TokenVerifier({ jwksUrl: gone.url, log: { warn: (fields: { err: Error }) => void warnings.push(fields) } as never })
    await gone.stop()
    const err = await refusal(unreachable, token)
    assert.equal(err.code, 'unavailable')
    assert.equal(err.status, 503)
    await refusal(unreachable, await gone.sign('bob'))
    assert.equal(warnings.length, 1, 'reported once, not once a request')
    assert.ok(warnings[0]!.err instanceof Error)
  })

  test('a JWKS document larger than MAX_JWKS_BYTES is refused as unavailable and logged, with or without Content-Length; a padded one below it is read', async () => {
    for (const chunked of [false, true]) {
      const huge = await JwksIssuer.start(1, { padBytes: MAX_JWKS_BYTES + 1, chunked })
      try {
        const warnings: Array<{ err: Error }> = []
        const verifier = new TokenVerifier({ jwksUrl: huge.url, log: { warn: (fields: { err: Error }) => void warnings.push(fields) } as never })
        const err = await refusal(verifier, await huge.sign('alice'))
        assert.equal(err.code, 'unavailable', `chunked: ${chunked}`)
        assert.match(warnings[0]?.err.message ?? '', /larger than 262144 bytes/)
      } finally {
        await huge.stop()
      }
    }
    const padded = await JwksIssuer.start(1, { padBytes: MAX_JWKS_BYTES - 1000, chunked: true })
    try {
      assert.equal((await new TokenVerifier({ jwksUrl: padded.url }).verify(await padded.sign('alice'))).clientId, 'alice')
    } finally {
      await padded.stop()
    }
  })

  test('during a key rotation (two keys published), a token without kid is checked against each', async () => {
    const rotating = await JwksIssuer.start(2)
    try {
      const verifier = new TokenVerifier({ jwksUrl: rotating.url })
      assert.equal((await verifier.verify(await rotating.sign('alice', { key: 1, kid: null }))).clientId, 'alice')
      assert.equal((await verifier.verify(await rotating.sign('bob', { key: 2, kid: null }))).clientId, 'bob')
      const stranger = await JwksIssuer.start()
      try {
        const err = await refusal(verifier, await stranger.sign('alice', { kid: null }))
        assert.equal(err.code, 'unauthenticated')
        assert.match(err.message, /signature does not verify/)
      } finally {
        await stranger.stop()
      }
    } finally {
      await rotating.stop()
    }
  })
})
