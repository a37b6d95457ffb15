import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createKeyPackageInspector, inspectKeyPackage, MlsValidationError, supportedCiphersuites, type KeyPackagePolicy } from '../../src/mls/index.js'
import { MlsTestClient } from '../helpers/mls-client.js'

const policy: KeyPackagePolicy = { allowedCiphersuites: new Set(supportedCiphersuites().map((s) => s.id)), maxLifetimeSeconds: 90 * 86400, now: new Date() }

test('the worker pool answers exactly as inspectKeyPackage: inspections, MlsValidationErrors, not-mls', async () => {
  const client = await MlsTestClient.create('pool-client')
  const good = await Promise.all([1, 2, 3, 4, 5].map(() => client.createKeyPackage()))
  const bad = Uint8Array.from(good[0]!.bytes)
  bad[bad.length - 5]! ^= 1
  const inputs = [...good.map((kp) => kp.bytes), bad, new TextEncoder().encode('not mls at all')]
  const pool = createKeyPackageInspector(2)
  try {
    const settle = (p: Promise<unknown>) => p.then((value) => ({ value }), (err: MlsValidationError) => ({ check: err.check, name: err.name, message: err.message }))
    const viaPool = await Promise.all(inputs.map((bytes) => settle(pool.inspect(bytes, policy))))
    const direct = await Promise.all(inputs.map((bytes) => settle(inspectKeyPackage(bytes, policy))))
    assert.deepEqual(viaPool, direct)
    assert.equal((viaPool[5] as { check: string }).check, 'signature')
    await assert.rejects(pool.inspect(bad, policy), (err) => err instanceof MlsValidationError && err.check === 'signature')
  } finally {
    await pool.close()
  }
  // Closed: inspections still answer, on this thread.
  assert.equal((await pool.inspect(good[0]!.bytes, policy)).kind, 'key-package')
})

test('0 workers inspects on the calling thread', async () => {
  const pool = createKeyPackageInspector(0)
  assert.equal(pool.inspect, inspectKeyPackage)
  await pool.close()
})
