/**
 * Standard base64 (RFC 4648 §4, padded), the encoding of every binary field over REST, checked
 * and decoded once per field.
 *
 * The validator decodes to check (isStandardBase64) and keeps the last string it accepted with
 * its bytes; the handler's fromBase64 of that same string takes them instead of decoding again.
 * The bytes are in memory of their own, never in Buffer's shared 8 KiB pool: a stored
 * KeyPackage would keep a whole pool slab (and whatever else is in it) alive, and even for
 * relayed messages, which the stores copy, the pool made the memory bench leave 0.18 or 0.28 ×
 * the payload after delete + GC, run to run, against a steady 0.18–0.19 without (4 runs each).
 */

let lastText: string | undefined
let lastBytes: Uint8Array | undefined

/**
 * Whether `text` is standard base64 (exactly the strings BASE64_PATTERN accepts, checked against
 * it in the tests). The pattern backtracks over groups of four, and even a simple regular
 * expression costs ~2 µs on a 1.4 KB message; decoding costs less and is needed anyway.
 */
export function isStandardBase64(text: string): boolean {
  const n = text.length
  if (n === 0 || n % 4 !== 0) return false
  // Node's decoder takes the URL-safe alphabet too and reads only the low byte of a UTF-16
  // unit: rule out both (a UTF-8 length equal to the string's means every unit is ASCII).
  if (text.includes('-') || text.includes('_') || Buffer.byteLength(text, 'utf8') !== n) return false
  // It skips any other byte that is not base64 and stops at '=': then fewer bytes come out.
  const padding = text.charCodeAt(n - 1) !== 61 ? 0 : text.charCodeAt(n - 2) !== 61 ? 1 : 2
  const bytes = decode(text)
  if (bytes.length !== (n / 4) * 3 - padding) return false
  lastText = text
  lastBytes = bytes
  return true
}

/** The bytes of a base64 string the schemas accepted, in memory of their own (taken from the validator when it just decoded them). */
export function fromBase64(text: string): Uint8Array {
  if (lastText === text && lastBytes) {
    const bytes = lastBytes
    // Handed out once: each caller owns what it gets.
    lastText = lastBytes = undefined
    return bytes
  }
  return decode(text)
}

/** Decodes straight into an unpooled buffer. */
function decode(text: string): Uint8Array {
  const out = Buffer.allocUnsafeSlow(Buffer.byteLength(text, 'base64'))
  const length = out.write(text, 'base64')
  return new Uint8Array(out.buffer, out.byteOffset, length)
}
