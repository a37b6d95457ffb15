/**
 * The cipher suites ts-mls 1.6.4 implements (RFC 9420 §17.1 ids 1–7, plus ts-mls's own
 * ids 77–88 for ML-KEM / X-Wing / ML-DSA suites, which are NOT IANA assignments), the
 * parser for the `MLS_CIPHERSUITES` setting, and a cache of loaded implementations.
 */
import {
  ciphersuites,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type CiphersuiteName,
} from 'ts-mls'

export interface CiphersuiteInfo {
  readonly id: number
  readonly name: string
}

const BY_ID: ReadonlyMap<number, CiphersuiteName> = new Map(
  (Object.entries(ciphersuites) as [CiphersuiteName, number][]).map(([name, id]) => [id, name]),
)
const BY_UPPER_NAME: ReadonlyMap<string, number> = new Map(
  (Object.entries(ciphersuites) as [CiphersuiteName, number][]).map(([name, id]) => [name.toUpperCase(), id]),
)

/** All suites ts-mls supports, ordered by id. */
export function supportedCiphersuites(): CiphersuiteInfo[] {
  return [...BY_ID].sort((a, b) => a[0] - b[0]).map(([id, name]) => ({ id, name }))
}

export function isKnownCiphersuite(id: number): boolean {
  return BY_ID.has(id)
}

export function ciphersuiteName(id: number): string | undefined {
  return BY_ID.get(id)
}

/**
 * ts-mls decodes a cipher suite as its name, or, when the id is unknown, as the decimal id
 * in a string (e.g. "4660"). Returns the numeric id either way.
 */
export function ciphersuiteIdFromDecoded(decoded: string): number {
  const known = (ciphersuites as Record<string, number>)[decoded]
  return known ?? Number(decoded)
}

/**
 * Parses a `MLS_CIPHERSUITES` value: a comma-separated list of ids (decimal or 0x-hex) or
 * names (case-insensitive), e.g. `1,3,MLS_256_XWING_AES256GCM_SHA512_Ed25519`.
 * Throws an Error naming the offending entry for anything unknown or an empty list.
 */
export function parseCiphersuiteList(value: string): Set<number> {
  const result = new Set<number>()
  for (const raw of value.split(',')) {
    const entry = raw.trim()
    if (entry === '') continue
    let id: number | undefined
    if (/^(0x[0-9a-f]+|[0-9]+)$/i.test(entry)) {
      id = Number(entry)
      if (!BY_ID.has(id)) id = undefined
    } else {
      id = BY_UPPER_NAME.get(entry.toUpperCase())
    }
    if (id === undefined) {
      const known = supportedCiphersuites().map((s) => `${s.id} (${s.name})`).join(', ')
      throw new Error(`MLS_CIPHERSUITES: unknown cipher suite "${entry}"; supported: ${known}`)
    }
    result.add(id)
  }
  if (result.size === 0) throw new Error('MLS_CIPHERSUITES: the list is empty')
  return result
}

const impls = new Map<number, Promise<CiphersuiteImpl>>()

/**
 * The ts-mls implementation of a known suite, loaded once and cached. Rejects when the
 * optional crypto package that the suite needs is missing.
 */
export function loadCiphersuiteImpl(id: number): Promise<CiphersuiteImpl> {
  let p = impls.get(id)
  if (p === undefined) {
    const name = BY_ID.get(id)
    p = name === undefined
      ? Promise.reject(new Error(`unknown cipher suite ${id}`))
      : getCiphersuiteImpl(getCiphersuiteFromName(name))
    impls.set(id, p)
  }
  return p
}

export interface CiphersuiteStatus extends CiphersuiteInfo {
  readonly loads: boolean
  readonly error?: string
}

/**
 * Loads each suite's implementation and exercises its signature and HPKE key generation,
 * so a missing optional package shows up at startup rather than on the first request.
 */
export async function checkCiphersuiteImplementations(ids?: Iterable<number>): Promise<CiphersuiteStatus[]> {
  const list = ids === undefined ? supportedCiphersuites().map((s) => s.id) : [...ids]
  return Promise.all(list.map(async (id): Promise<CiphersuiteStatus> => {
    const name = BY_ID.get(id) ?? String(id)
    try {
      const impl = await loadCiphersuiteImpl(id)
      await impl.signature.keygen()
      await impl.hpke.generateKeyPair()
      return { id, name, loads: true }
    } catch (err) {
      return { id, name, loads: false, error: err instanceof Error ? err.message : String(err) }
    }
  }))
}
