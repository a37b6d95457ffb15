import { createHash } from 'node:crypto'
import type { ValidationMode } from '../config.js'
import { ServiceError } from '../errors.js'
import { inspectKeyPackage, isMlsValidationError, type KeyPackageInspection, type KeyPackagePolicy } from '../mls/index.js'
import type { KeyPackageRecord } from '../storage/store.js'

/**
 * Turns uploaded bytes into records, or rejects the whole batch. Bytes that are MLS are always
 * fully validated; bytes that are not MLS at all are rejected in strict mode and kept as opaque
 * legacy data (the original's semantics) in permissive mode.
 */
export type InspectKeyPackage = (bytes: Uint8Array, policy: KeyPackagePolicy) => Promise<KeyPackageInspection>

export async function toKeyPackageRecords(
  packages: readonly Uint8Array[],
  mode: ValidationMode,
  policy: KeyPackagePolicy,
  inspect: InspectKeyPackage = inspectKeyPackage,
): Promise<KeyPackageRecord[]> {
  const storedAt = policy.now.getTime()
  // All are inspected at once (on a worker pool, in parallel); errors are reported in batch order.
  const inspections = packages.map((data) => (data.length === 0 ? undefined : settle(inspect(data, policy))))
  const records: KeyPackageRecord[] = []
  for (const [index, data] of packages.entries()) {
    const where = packages.length > 1 ? `key_packages[${index}]: ` : ''
    const settled = await inspections[index]
    if (settled === undefined) throw new ServiceError('bad_request', `${where}a KeyPackage must not be empty`)
    if (!settled.ok) {
      const err = settled.error
      if (!isMlsValidationError(err)) throw err
      throw new ServiceError('invalid_key_package', `${where}${err.message}`, { check: err.check })
    }
    const inspection = settled.value
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

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown }

/** Never rejects, so an inspection that fails after an earlier error is not an unhandled rejection. */
function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then((value) => ({ ok: true, value }), (error: unknown) => ({ ok: false, error }))
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}
