/**
 * KeyPackage validation for uploads (RFC 9420 §10.1, §7.2, §5.2).
 *
 * What counts as MLS: the bytes start with ProtocolVersion mls10 (0x0001) followed by
 * either wire format mls_key_package (0x0005, an MLSMessage) or a cipher suite id this
 * implementation knows (a bare KeyPackage), or the whole buffer decodes as a KeyPackage
 * or MLSMessage. Such bytes are validated and any failure throws MlsValidationError.
 * Everything else (text, JSON, random bytes, placeholders) is `{ kind: 'not-mls' }`.
 */
import { decodeMlsMessage, defaultExtensionTypes, type KeyPackage } from 'ts-mls'
import { decodeKeyPackage, encodeKeyPackage, makeKeyPackageRef, verifyKeyPackage } from 'ts-mls/keyPackage.js'
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js'
import { equalBytes, toHex } from './bytes.js'
import { ciphersuiteIdFromDecoded, ciphersuiteName, isKnownCiphersuite, loadCiphersuiteImpl } from './ciphersuites.js'
import {
  MLS10, WIRE_FORMAT, WIRE_FORMAT_NAMES, isDecodableCredentialType, isSurelyFramed, peekKeyPackageCredentialType, readHeader, tryDecode,
  type DecodeResult,
} from './decode.js'
import { MlsValidationError } from './errors.js'

/** Extension type of `last_resort` (draft-ietf-mls-extensions, IANA MLS Extension Types). */
export const LAST_RESORT_EXTENSION_TYPE = 0x000a

export interface KeyPackagePolicy {
  readonly allowedCiphersuites: ReadonlySet<number>
  /** Longest accepted notAfter - notBefore (RFC 9420 §7.2 asks applications to set one). */
  readonly maxLifetimeSeconds: number
  readonly now: Date
  /** Tolerance for client clocks when checking notBefore / notAfter; default 0. */
  readonly clockSkewSeconds?: number
}

export type KeyPackageInspection =
  | { readonly kind: 'not-mls' }
  | {
    readonly kind: 'key-package'
    /** Hex KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage) (§5.2). */
    readonly ref: string
    readonly ciphersuite: number
    readonly lastResort: boolean
    /** Unix seconds (the leaf's Lifetime, §7.2). */
    readonly notBefore: number
    readonly notAfter: number
    readonly framing: 'bare' | 'mls-message'
  }

interface Located {
  readonly keyPackage: KeyPackage
  /** The bare KeyPackage bytes (without the MLSMessage header). */
  readonly body: Uint8Array
  readonly framing: 'bare' | 'mls-message'
}

/**
 * Decodes and validates an uploaded KeyPackage (bare, or wrapped in an MLSMessage).
 * Resolves `{ kind: 'not-mls' }` for bytes that are not MLS; throws MlsValidationError
 * for MLS bytes that break a rule. Cheap checks run before signature verification.
 */
export async function inspectKeyPackage(bytes: Uint8Array, policy: KeyPackagePolicy): Promise<KeyPackageInspection> {
  const located = locateKeyPackage(bytes)
  if (located === undefined) return { kind: 'not-mls' }
  const { keyPackage: kp, body, framing } = located

  // §10.1: the cipher suite must be known and acceptable.
  const ciphersuite = ciphersuiteIdFromDecoded(kp.cipherSuite)
  if (!isKnownCiphersuite(ciphersuite)) {
    throw new MlsValidationError('ciphersuite_unknown', `KeyPackage cipher suite ${ciphersuite} is not supported`)
  }
  if (!policy.allowedCiphersuites.has(ciphersuite)) {
    throw new MlsValidationError('ciphersuite_not_allowed',
      `KeyPackage cipher suite ${ciphersuite} (${ciphersuiteName(ciphersuite)}) is not accepted by this service`)
  }

  // Signatures and the ref are computed over the re-encoded structure: require it to be
  // the bytes we were given (§2.1.2 lengths are minimal), so the ref names these bytes.
  if (!equalBytes(encodeKeyPackage(kp), body)) {
    throw new MlsValidationError('non_canonical', 'KeyPackage is not canonically encoded')
  }

  // §10.1: "Verify that the value of leaf_node.encryption_key is different from init_key".
  if (equalBytes(kp.initKey, kp.leafNode.hpkePublicKey)) {
    throw new MlsValidationError('init_key_reuse', 'KeyPackage init_key equals the leaf encryption_key')
  }

  const { notBefore, notAfter } = checkLifetime(kp, policy)

  const impl = await loadCiphersuiteImpl(ciphersuite).catch(() => {
    throw new MlsValidationError('ciphersuite_unavailable', `KeyPackage cipher suite ${ciphersuite} is not available`)
  })
  // §10.1: KeyPackage signature (label "KeyPackageTBS") and §7.2 leaf signature
  // (label "LeafNodeTBS"), both with leaf_node.signature_key. Malformed keys may throw.
  if (!(await verifyKeyPackage(kp, impl.signature).catch(() => false))) {
    throw new MlsValidationError('signature', 'KeyPackage signature does not verify')
  }
  if (!(await verifyLeafNodeSignatureKeyPackage(kp.leafNode, impl.signature).catch(() => false))) {
    throw new MlsValidationError('leaf_signature', 'KeyPackage leaf node signature does not verify')
  }

  const ref = toHex(await makeKeyPackageRef(kp, impl.hash))
  const lastResort = kp.extensions.some((e) => extensionTypeNumber(e.extensionType) === LAST_RESORT_EXTENSION_TYPE)
  return { kind: 'key-package', ref, ciphersuite, lastResort, notBefore, notAfter, framing }
}

function extensionTypeNumber(t: number | string): number {
  return typeof t === 'number' ? t : (defaultExtensionTypes as Record<string, number>)[t] ?? -1
}

/** §7.2 Lifetime: now within [notBefore, notAfter], total length bounded by policy. */
function checkLifetime(kp: KeyPackage, policy: KeyPackagePolicy): { notBefore: number; notAfter: number } {
  if (kp.leafNode.leafNodeSource !== 'key_package') {
    throw new MlsValidationError('malformed', 'KeyPackage leaf node source is not key_package')
  }
  const { notBefore, notAfter } = kp.leafNode.lifetime
  const now = BigInt(Math.floor(policy.now.getTime() / 1000))
  const skew = BigInt(Math.max(0, Math.floor(policy.clockSkewSeconds ?? 0)))
  if (now + skew < notBefore) {
    throw new MlsValidationError('not_yet_valid', `KeyPackage is not valid before ${notBefore} (now ${now})`)
  }
  if (now - skew > notAfter) {
    throw new MlsValidationError('expired', `KeyPackage expired at ${notAfter} (now ${now})`)
  }
  if (notAfter - notBefore > BigInt(Math.floor(policy.maxLifetimeSeconds))) {
    throw new MlsValidationError('lifetime_too_long',
      `KeyPackage lifetime ${notAfter - notBefore}s exceeds the maximum of ${policy.maxLifetimeSeconds}s`)
  }
  return { notBefore: Number(notBefore), notAfter: Number(notAfter) }
}

/**
 * Finds the KeyPackage in `bytes`: as an MLSMessage (header 0001 0005) or bare
 * (0001 + cipher suite). The two can collide (a bare KeyPackage of suite 5 also starts
 * 0001 0005), so both are tried and the one that decodes the whole buffer wins, unless
 * the bytes are surely framed (see isSurelyFramed).
 */
function locateKeyPackage(bytes: Uint8Array): Located | undefined {
  const header = readHeader(bytes)
  if (header === undefined) return undefined
  if (header.version !== MLS10) {
    checkOtherVersion(bytes, 0)
    return undefined
  }
  const framed = header.wireFormat === WIRE_FORMAT.keyPackage ? tryDecode(decodeMlsMessage, bytes) : undefined
  const framedKp = framed?.ok === true && framed.value.wireformat === 'mls_key_package' ? framed : undefined
  if (framedKp?.consumed === bytes.length && framedKp.value.wireformat === 'mls_key_package') {
    return { keyPackage: framedKp.value.keyPackage, body: bytes.subarray(4), framing: 'mls-message' }
  }
  const surelyFramed = isSurelyFramed(bytes, WIRE_FORMAT.keyPackage)
  const bare: DecodeResult<KeyPackage> = surelyFramed ? { ok: false } : tryDecode(decodeKeyPackage, bytes)
  if (bare.ok && bare.consumed === bytes.length) {
    return { keyPackage: bare.value, body: bytes, framing: 'bare' }
  }
  if (framedKp !== undefined || bare.ok) {
    throw new MlsValidationError('trailing_bytes', 'KeyPackage is followed by trailing bytes')
  }

  // Another MLSMessage (PublicMessage, Welcome, ...) where a KeyPackage was expected.
  if (header.wireFormat >= WIRE_FORMAT.public && header.wireFormat <= WIRE_FORMAT.groupInfo) {
    const other = tryDecode(decodeMlsMessage, bytes)
    if (other.ok) {
      throw new MlsValidationError('not_a_key_package',
        `expected a KeyPackage, got an MLS ${WIRE_FORMAT_NAMES[header.wireFormat]}`)
    }
  }
  const framedHeader = header.wireFormat === WIRE_FORMAT.keyPackage
  if (framedHeader) checkOtherVersion(bytes, 4)
  // A TypeError from ts-mls means a credential type it cannot decode: name it.
  const attempts: [DecodeResult<unknown> | undefined, number][] = surelyFramed ? [[framed, 4]] : [[framed, 4], [bare, 0]]
  for (const [attempt, offset] of attempts) {
    if (attempt === undefined || attempt.ok || !(attempt.error instanceof TypeError)) continue
    const credentialType = peekKeyPackageCredentialType(bytes, offset)
    if (credentialType !== undefined && !isDecodableCredentialType(credentialType)) {
      throw new MlsValidationError('credential',
        `KeyPackage credential type ${credentialType} is not supported (only basic and x509)`)
    }
  }
  if (framedHeader || isKnownCiphersuite(header.wireFormat)) {
    throw new MlsValidationError('malformed', 'KeyPackage does not decode (truncated or corrupt)')
  }
  return undefined
}

/**
 * §6: only mls10 exists. If the bytes decode as a KeyPackage once the version at
 * `offset` is read as mls10, they are a KeyPackage of another version: reject clearly.
 */
function checkOtherVersion(bytes: Uint8Array, offset: number): void {
  if (bytes.length < offset + 4 || bytes[offset] !== 0 || bytes[offset + 1] === MLS10) return
  const patched = Uint8Array.from(bytes)
  patched[offset + 1] = MLS10
  const found = offset === 0
    ? tryDecode(decodeKeyPackage, patched).ok || (patched[3] === WIRE_FORMAT.keyPackage && patched[2] === 0
      && tryDecode(decodeMlsMessage, patched).ok)
    : tryDecode(decodeMlsMessage, patched).ok
  if (found) {
    throw new MlsValidationError('version', `KeyPackage protocol version ${bytes[offset + 1]} is not mls10`)
  }
}
