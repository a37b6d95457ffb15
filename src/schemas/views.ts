import type { GroupRecord, KeyPackageRecord, StoredMessage } from '../storage/store.js'

/**
 * The facts both doors answer, in the wire's snake_case. Only the byte encoding differs:
 * REST sends base64 strings, the legacy TCP protocol arrays of byte values.
 */
export type BytesEncoder<T> = (bytes: Uint8Array) => T

export const toBase64: BytesEncoder<string> = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
export const toByteArray: BytesEncoder<number[]> = (bytes) => Array.from(bytes)

export function groupView(group: GroupRecord) {
  return {
    group_id: group.groupId,
    creator_id: group.creatorId,
    members: [...group.members],
    next_seq: group.nextSeq,
    created_at: new Date(group.createdAt).toISOString(),
  }
}

export function keyPackageView<T>(clientId: string, record: KeyPackageRecord, encode: BytesEncoder<T>) {
  return { client_id: clientId, key_package: encode(record.data), key_package_ref: record.ref }
}

export function messageView<T>(message: StoredMessage, encode: BytesEncoder<T>) {
  return {
    seq: message.seq,
    sender_id: message.senderId,
    message_type: message.messageType,
    message: encode(message.data),
    received_at: new Date(message.receivedAt).toISOString(),
  }
}
