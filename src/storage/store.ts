/**
 * The storage contract. Every operation is async and is one atomic step, so that a
 * transactional database can implement it with one transaction (a claim is a
 * `DELETE … RETURNING`, an append is "insert if the group is in the expected state").
 * The service layer talks only to this interface and never knows which store it has.
 */

export const MESSAGE_TYPES = ['Welcome', 'Add', 'Application', 'Commit', 'Proposal'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]

export interface KeyPackageRecord {
  /** Hex id: the MLS KeyPackageRef, or a SHA-256 of the bytes for opaque (legacy) data. */
  readonly ref: string
  /** Exactly the bytes that were uploaded. */
  readonly data: Uint8Array
  readonly ciphersuite: number | null
  /** Handed out only when nothing else is left, and kept (draft-ietf-mls-extensions). */
  readonly lastResort: boolean
  /** Opaque bytes with the original's semantics: one per client, replaced, never consumed. */
  readonly legacy: boolean
  /** Unix seconds after which the package is never handed out; null when unknown. */
  readonly notAfter: number | null
  /** Unix milliseconds. */
  readonly storedAt: number
}

export interface ClaimQuery {
  readonly ciphersuite?: number
  /** Unix seconds; packages whose notAfter is before this are purged, never handed out. */
  readonly now: number
}

export interface GroupRecord {
  readonly groupId: string
  readonly creatorId: string
  /** In the order they joined; the creator first. */
  readonly members: readonly string[]
  /** The seq the next accepted message gets (the first is 1). */
  readonly nextSeq: number
  readonly createdAt: number
}

export interface NewGroup {
  readonly groupId: string
  readonly creatorId: string
  readonly createdAt: number
}

export interface NewMessage {
  readonly senderId: string
  readonly messageType: MessageType
  readonly data: Uint8Array
  readonly receivedAt: number
}

export interface StoredMessage extends NewMessage {
  readonly seq: number
}

/** What must hold for an append to happen, checked in the same atomic step. */
export interface AppendCondition {
  /** The sender must be a member of the group when the message is accepted. */
  readonly senderMustBeMember: boolean
}

export type AppendResult =
  | { readonly ok: true; readonly seq: number }
  | { readonly ok: false; readonly reason: 'no_group' | 'not_member' }

export type RemoveMemberResult = 'removed' | 'not_member' | 'no_group'

export interface Store {
  /** A short name for health output ("memory", "postgres", …). */
  readonly kind: string

  /** Adds packages to the client's pool (a legacy one replaces the client's legacy one); returns how many are available. */
  addKeyPackages(clientId: string, records: readonly KeyPackageRecord[], now: number): Promise<number>
  /** Hands out one package: removes it unless it is legacy or last-resort. */
  claimKeyPackage(clientId: string, query: ClaimQuery): Promise<KeyPackageRecord | undefined>
  /** Client ids with at least one package that can be handed out, sorted. */
  listKeyPackageClients(now: number): Promise<string[]>
  /** Removes all of the client's packages; returns how many there were. */
  deleteKeyPackages(clientId: string): Promise<number>

  /** Creates the group with its creator as first member; undefined when the id is taken. */
  createGroup(group: NewGroup): Promise<GroupRecord | undefined>
  getGroup(groupId: string): Promise<GroupRecord | undefined>
  /** Deletes the group and its messages; false when there was none. */
  deleteGroup(groupId: string): Promise<boolean>
  /** Adds a member (idempotent); undefined when there is no such group. */
  addMember(groupId: string, clientId: string): Promise<GroupRecord | undefined>
  removeMember(groupId: string, clientId: string): Promise<RemoveMemberResult>
  /** Appends with the next seq of the group, only if the condition holds. */
  appendMessage(groupId: string, message: NewMessage, condition: AppendCondition): Promise<AppendResult>
  /** Messages with seq > after, in seq order, at most `limit`; undefined when there is no such group. */
  readMessages(groupId: string, after: number, limit: number): Promise<StoredMessage[] | undefined>

  close(): Promise<void>
}
