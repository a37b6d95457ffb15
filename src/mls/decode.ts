/**
 * Safe wrappers around the ts-mls decoders, which either return `[value, bytesConsumed]`,
 * return undefined, or THROW (CodecError on truncation, TypeError on a custom credential
 * type). Also the header constants of RFC 9420 §6 (MLSMessage).
 */
import { readU16, readVector } from './bytes.js'

/** ProtocolVersion mls10 (RFC 9420 §6). */
export const MLS10 = 1

/** WireFormat values (RFC 9420 §6, §17.2). */
export const WIRE_FORMAT = {
  public: 1,
  private: 2,
  welcome: 3,
  groupInfo: 4,
  keyPackage: 5,
} as const

export const WIRE_FORMAT_NAMES: Readonly<Record<number, string>> = {
  1: 'PublicMessage',
  2: 'PrivateMessage',
  3: 'Welcome',
  4: 'GroupInfo',
  5: 'KeyPackage',
}

export type Decoder<T> = (b: Uint8Array, offset: number) => [T, number] | undefined

export type DecodeResult<T> =
  | { readonly ok: true; readonly value: T; readonly consumed: number }
  | { readonly ok: false; readonly error?: unknown }

/** Runs a ts-mls decoder and never throws. */
export function tryDecode<T>(decoder: Decoder<T>, bytes: Uint8Array, offset = 0): DecodeResult<T> {
  try {
    const r = decoder(bytes, offset)
    if (r === undefined) return { ok: false }
    return { ok: true, value: r[0], consumed: r[1] }
  } catch (error) {
    return { ok: false, error }
  }
}

/** The MLSMessage header: version and wire format (bytes 0–1 and 2–3). */
export function readHeader(bytes: Uint8Array): { version: number; wireFormat: number } | undefined {
  if (bytes.length < 4) return undefined
  return { version: readU16(bytes, 0), wireFormat: readU16(bytes, 2) }
}

/**
 * Header 0001 000N followed by mls10 again at byte 4 is an MLSMessage wrapping a KeyPackage
 * (N=5) or GroupInfo (N=4), whose own first field is the version. The same first four bytes
 * could start a bare KeyPackage of suite 5 / GroupInfo of suite 4, but then byte 4 would
 * begin init_key<V> / group_id<V> and 00 01 would mean an empty init_key (impossible) or an
 * empty group_id followed by an epoch >= 2^56: so the bare reading is not tried.
 */
export function isSurelyFramed(bytes: Uint8Array, wireFormat: number): boolean {
  return bytes.length >= 6 && readU16(bytes, 2) === wireFormat && readU16(bytes, 4) === MLS10
}

/**
 * Reads the credential type of a KeyPackage's leaf without ts-mls (RFC 9420 §10:
 * version, cipher_suite, init_key<V>, then LeafNode §7.2: encryption_key<V>,
 * signature_key<V>, Credential{credential_type uint16 ...}). ts-mls cannot decode
 * credential types other than basic (1) and x509 (2) (its decoder then throws a
 * TypeError): this lets us name the reason.
 */
export function peekKeyPackageCredentialType(bytes: Uint8Array, offset: number): number | undefined {
  let pos = offset + 4
  for (let i = 0; i < 3; i++) {
    const v = readVector(bytes, pos)
    if (v === undefined) return undefined
    pos = v.end
  }
  if (pos + 2 > bytes.length) return undefined
  return readU16(bytes, pos)
}

export function isDecodableCredentialType(t: number): boolean {
  return t === 1 || t === 2
}
