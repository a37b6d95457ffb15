import { createHash } from 'node:crypto'
import type { ValidationMode } from '../config.js'
import { ServiceError } from '../errors.js'
import { inspectKeyPackage, isMlsValidationError, type KeyPackagePolicy } from '../mls/index.js'
import type { KeyPackageRecord } from '../storage/store.js'

/**
 * Turns uploaded bytes into records, or rejects the whole batch. Bytes that are MLS are always
 * fully validated; bytes that are not MLS at all are rejected in strict mode and kept as opaque
 * legacy data (the original's semantics) in permissive mode.
 */
export async function toKeyPackageRecords(
  packages: readonly Uint8Array[],
  mode: ValidationMode,
  policy: KeyPackagePolicy,
): Promise<KeyPackageRecord[]> {
  const storedAt = policy.now.getTime()
  const records: KeyPackageRecord[] = []
  for (const [index, data] of packages.entries()) {
    const where = packages.length > 1 ? `key_packages[${index}]: ` : ''
    if (data.length === 0) throw new ServiceError('bad_request', `${where}a KeyPackage must not be empty`)
    let inspection
    try {
      inspection = await inspectKeyPackage(data, policy)
    } catch (err) {
      if (!isMlsValidationError(err)) throw err
      throw new ServiceError('invalid_key_package', `${where}${err.message}`, { check: err.check })
    }
    if (inspection.kind === 'not-mls') {
      if (mode === 'strict') {
        throw new ServiceError('invalid_key_package', `${where}the bytes are not an MLS KeyPackage (MLS_VALIDATION=strict)`, { check: 'not_mls' })
      }
      records.push({ ref: sha256Hex(data), data, ciphersuite: null, lastResort: false, legacy: true, notAfter: null, storedAt })
      continue
    }
    records.push({
      ref: inspection.ref,
      data,
      ciphersuite: inspection.ciphersuite,
      lastResort: inspection.lastResort,
      legacy: false,
      notAfter: inspection.notAfter,
      storedAt,
    })
  }
  return records
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
