import type { GroupListPage, RelayResult } from '../service/delivery-service.js'
import type { ClientDeletion, Delivery, DeliveryPage, MessagePage, GroupInfoRecord, GroupRecord, KeyPackageCount, KeyPackageRecord, StoredMessage, WelcomeRecord } from '../storage/store.js'

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
    epoch: group.epoch,
    created_at: new Date(group.createdAt).toISOString(),
  }
}

export function keyPackageView<T>(clientId: string, record: KeyPackageRecord, encode: BytesEncoder<T>) {
  return { client_id: clientId, key_package: encode(record.data), key_package_ref: record.ref, ciphersuite: record.ciphersuite, last_resort: record.lastResort }
}

export function keyPackageCountView(clientId: string, count: KeyPackageCount) {
  return {
    client_id: clientId,
    total: count.total,
    by_ciphersuite: Object.fromEntries([...count.byCiphersuite].map(([suite, n]) => [String(suite), n])),
    last_resort: count.lastResort,
    legacy: count.legacy,
  }
}

export function clientGroupsView(clientId: string, page: GroupListPage) {
  return { client_id: clientId, groups: page.groups, ...(page.nextAfter === undefined ? {} : { next_after: page.nextAfter }) }
}

export function clientDeletedView(clientId: string, deleted: ClientDeletion) {
  return {
    client_id: clientId,
    groups_left: deleted.groups,
    key_packages_deleted: deleted.keyPackages,
    deliveries_deleted: deleted.deliveries,
    welcomes_deleted: deleted.welcomes,
  }
}

export function welcomeView<T>(welcome: WelcomeRecord, encode: BytesEncoder<T>) {
  return {
    seq: welcome.seq,
    group_id: welcome.groupId,
    sender_id: welcome.senderId,
    welcome: encode(welcome.data),
    received_at: new Date(welcome.receivedAt).toISOString(),
  }
}

export function groupInfoView<T>(groupId: string, info: GroupInfoRecord, encode: BytesEncoder<T>) {
  return {
    group_id: groupId,
    epoch: info.epoch,
    group_info: encode(info.data),
    ratchet_tree: info.ratchetTree ? encode(info.ratchetTree) : null,
  }
}

export function messageView<T>(message: StoredMessage, encode: BytesEncoder<T>) {
  return {
    seq: message.seq,
    sender_id: message.senderId,
    message_type: message.messageType,
    epoch: message.epoch,
    content_type: message.contentType,
    message: encode(message.data),
    received_at: new Date(message.receivedAt).toISOString(),
  }
}

/** One entry of a client's queue, as pulled, streamed over WebSocket, or sent over TCP. */
export function deliveryView<T>(delivery: Delivery, encode: BytesEncoder<T>) {
  return {
    seq: delivery.seq,
    group_id: delivery.groupId,
    group_seq: delivery.groupSeq,
    sender_id: delivery.senderId,
    kind: delivery.kind,
    message_type: delivery.messageType,
    epoch: delivery.epoch,
    content_type: delivery.contentType,
    message: encode(delivery.data),
    received_at: new Date(delivery.receivedAt).toISOString(),
  }
}

export function gapView(gap: NonNullable<DeliveryPage['gap']>) {
  return { missed_from: gap.missedFrom, first_available_seq: gap.firstAvailableSeq }
}

/** A page of a group's log read after `after`, with the gap when GROUP_LOG_MAX_AGE dropped messages after `after`. */
export function messagesView<T>(groupId: string, page: MessagePage, after: number, encode: BytesEncoder<T>) {
  const messages = page.messages.map((m) => messageView(m, encode))
  if (after + 1 >= page.firstSeq) return { group_id: groupId, messages }
  return { group_id: groupId, messages, gap: gapView({ missedFrom: after + 1, firstAvailableSeq: page.firstSeq }) }
}

/** The answer to an accepted relay, on REST and on a live stream. */
export function relayView(result: RelayResult) {
  return { group_id: result.groupId, seq: result.seq, epoch: result.epoch, message_type: result.messageType }
}
