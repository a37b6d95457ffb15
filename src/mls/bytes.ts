/**
 * Small byte helpers for the hot path: reading the MLS header and the clear fields of a
 * PrivateMessage without building objects (RFC 9420 §2.1 presentation language).
 */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

export function toHex(bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i] as number]
  return out
}

/** Big-endian uint16 at `offset`; the caller checks bounds. */
export function readU16(b: Uint8Array, offset: number): number {
  return ((b[offset] as number) << 8) | (b[offset + 1] as number)
}

/** Big-endian uint64 at `offset`; the caller checks bounds. */
export function readU64(b: Uint8Array, offset: number): bigint {
  let hi = 0
  let lo = 0
  for (let i = 0; i < 4; i++) hi = hi * 256 + (b[offset + i] as number)
  for (let i = 4; i < 8; i++) lo = lo * 256 + (b[offset + i] as number)
  // Below 2^53 (every real epoch) one exact number makes one BigInt.
  return hi < 0x200000 ? BigInt(hi * 0x100000000 + lo) : (BigInt(hi) << 32n) | BigInt(lo)
}

/** A view of `length` bytes of `b` from `offset`, made directly (subarray() goes through the species constructor, several times slower). */
export function view(b: Uint8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + offset, length)
}

/**
 * Reads an `opaque x<V>` vector (RFC 9420 §2.1.2: 1, 2 or 4 byte variable-length length
 * prefix, 0b11 prefix invalid). Returns the start and end of the content, or undefined if
 * the vector does not fit in `b`. Lenient about non-minimal lengths, as ts-mls is.
 */
export function readVector(b: Uint8Array, offset: number): { start: number; end: number } | undefined {
  if (offset >= b.length) return undefined
  const first = b[offset] as number
  const prefix = first >> 6
  let len: number
  let size: number
  if (prefix === 0) {
    len = first & 0x3f
    size = 1
  } else if (prefix === 1) {
    if (offset + 2 > b.length) return undefined
    len = ((first & 0x3f) << 8) | (b[offset + 1] as number)
    size = 2
  } else if (prefix === 2) {
    if (offset + 4 > b.length) return undefined
    len = (first & 0x3f) * 0x1000000 + ((b[offset + 1] as number) << 16) + ((b[offset + 2] as number) << 8) + (b[offset + 3] as number)
    size = 4
  } else {
    return undefined
  }
  const start = offset + size
  const end = start + len
  if (end > b.length) return undefined
  return { start, end }
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
