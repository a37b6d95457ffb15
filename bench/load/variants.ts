/**
 * Distinct copies of one real MLS PrivateMessage. The service treats the same bytes from the
 * same sender as a retry (idempotency), so every relayed message must differ. Signing a fresh
 * one with ts-mls costs ~2 ms, too slow for a million; instead copy i has i written into the
 * last 4 bytes of the ciphertext. Its header (group id, epoch, content type) and every length
 * are unchanged, so the service parses and checks it exactly as the original; only a member
 * decrypting it would notice (the DS never decrypts, RFC 9750 §5).
 */
export function variant(message: Uint8Array, i: number): Buffer {
  const copy = Buffer.from(message)
  copy.writeUInt32BE(i >>> 0, copy.length - 4)
  return copy
}

export interface RelayVariants {
  /** base64 of the original message */
  readonly message: string
  readonly groupId: string
  readonly senderId: string
}

/** The REST body for copy i. */
export function restBody(v: RelayVariants, original: Uint8Array, i: number): string {
  return restBodyOf(v, variant(original, i).toString('base64'))
}

/** The REST body for a message already in base64. */
export function restBodyOf(v: RelayVariants, base64: string): string {
  return `{"sender_id":${JSON.stringify(v.senderId)},"message":"${base64}","message_type":"Application"}`
}

/** The legacy TCP RelayMessage line for copy i. */
export function tcpLine(v: RelayVariants, original: Uint8Array, i: number): string {
  return `{"type":"RelayMessage","group_id":${JSON.stringify(v.groupId)},"sender_id":${JSON.stringify(v.senderId)},"message":[${variant(original, i).join(',')}],"message_type":"Application"}`
}
