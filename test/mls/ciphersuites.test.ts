import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  checkCiphersuiteImplementations, ciphersuiteName, isKnownCiphersuite, parseCiphersuiteList, supportedCiphersuites,
} from '../../src/mls/index.js'

const IDS = [1, 2, 3, 4, 5, 6, 7, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88]

test('supportedCiphersuites lists the 19 ts-mls suites in id order', () => {
  const list = supportedCiphersuites()
  assert.deepEqual(list.map((s) => s.id), IDS)
  assert.equal(list[0]?.name, 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519')
  assert.equal(ciphersuiteName(83), 'MLS_256_XWING_AES256GCM_SHA512_Ed25519')
  assert.ok(isKnownCiphersuite(88))
  assert.ok(!isKnownCiphersuite(8))
})

test('every suite implementation loads with the installed packages', async () => {
  const status = await checkCiphersuiteImplementations()
  assert.equal(status.length, 19)
  for (const s of status) assert.ok(s.loads, `suite ${s.id} ${s.name}: ${s.error}`)
})

test('parseCiphersuiteList accepts ids, hex ids and names (case-insensitive)', () => {
  assert.deepEqual(parseCiphersuiteList('1'), new Set([1]))
  assert.deepEqual(
    parseCiphersuiteList(' 1, 0x0003 ,mls_256_xwing_aes256gcm_sha512_ed25519,MLS_256_XWING_AES256GCM_SHA512_MLDSA87,1'),
    new Set([1, 3, 83, 87]),
  )
})

test('parseCiphersuiteList rejects unknown entries and empty lists', () => {
  assert.throws(() => parseCiphersuiteList('1,8'), /unknown cipher suite "8"/)
  assert.throws(() => parseCiphersuiteList('MLS_NOPE'), /unknown cipher suite "MLS_NOPE"/)
  assert.throws(() => parseCiphersuiteList('1.5'), /unknown cipher suite/)
  assert.throws(() => parseCiphersuiteList(' , '), /empty/)
})

test('checkCiphersuiteImplementations reports an unknown id as not loading', async () => {
  const [s] = await checkCiphersuiteImplementations([9999])
  assert.equal(s?.loads, false)
})
