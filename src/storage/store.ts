/**
 * The storage contract. Every operation is async and is one atomic step, so that a
 * transactional database can implement it with one transaction (a claim is a
 * `DELETE … RETURNING`, an append is "insert if the group is in the expected state").
 * The service layer talks only to this interface and never knows which store it has.
 */
import type { IdPage } from './id-order.js'

export const MESSAGE_TYPES = ['Welcome', 'Add', 'Application', 'Commit', 'Proposal'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]
/** What the DS reads from an MLS message in clear (RFC 9420 §6); null for opaque legacy bytes. */
export const CONTENT_TYPES = ['application', 'proposal', 'commit', 'welcome'] as const
export type ContentType = (typeof CONTENT_TYPES)[number]

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
  /**
   * Hand out only a package that is kept (the last-resort one, else the legacy one), leaving
   * the one-time packages alone: a claim beyond KEY_PACKAGE_CLAIM_LIMIT.
   */
  readonly keptOnly?: boolean
}

export interface KeyPackageCount {
  readonly total: number
  /** Available packages by ciphersuite id; legacy packages have none. */
  readonly byCiphersuite: ReadonlyMap<number, number>
  readonly lastResort: number
  readonly legacy: number
}

export interface GroupRecord {
  readonly groupId: string
  readonly creatorId: string
  /** The current MLS epoch: the one the next Commit must carry. */
  readonly epoch: number
  /** The epoch of the latest stored GroupInfo, if any. */
  readonly groupInfoEpoch: number | null
  /** In the order they joined; the creator first. */
  readonly members: readonly string[]
  /** The seq the next accepted message gets (the first is 1). */
  readonly nextSeq: number
  readonly createdAt: number
}

export interface NewGroup {
  readonly groupId: string
  readonly creatorId: string
  readonly epoch: number
  readonly createdAt: number
}

export interface NewMessage {
  readonly senderId: string
  readonly messageType: MessageType
  readonly data: Uint8Array
  readonly receivedAt: number
  /** The MLS epoch the message carries; null for opaque bytes and Welcomes. */
  readonly epoch: number | null
  readonly contentType: ContentType | null
}

export interface StoredMessage extends NewMessage {
  readonly seq: number
}

/** A page of a group's log. */
export interface MessagePage {
  readonly messages: StoredMessage[]
  /**
   * The first seq the log still keeps (the group's next seq when it keeps none): the messages
   * before it were dropped by purgeGroupLogs. A reader after a seq below firstSeq - 1 missed some.
   */
  readonly firstSeq: number
}

/** What must hold for an append to happen, checked in the same atomic step. */
export interface AppendCondition {
  /** The sender must be a member of the group when the message is accepted. */
  readonly senderMustBeMember: boolean
  /**
   * Retry detection: when an accepted message of the group within the idempotency window
   * matches this one (see RetryIdentity), nothing is appended and its result is returned again
   * (checked first, so a retried Commit is not refused as stale).
   */
  readonly retry?: RetryIdentity
  /** The group must be at this epoch; with `advance`, the append moves it to epoch + 1 (a Commit). */
  readonly epoch?: { readonly expected: number; readonly advance: boolean }
}

/**
 * What makes a later append a retry of an accepted one: always from the same sender, to the
 * same group, within the idempotency window. Either match is enough.
 */
export interface RetryIdentity {
  /**
   * The same bytes again. Meant for MLS messages, which are unique, so equal bytes can only be
   * a retry; opaque legacy bytes are not compared (the original clients relay one placeholder
   * again and again).
   */
  readonly sameBytes: boolean
  /** The same client-chosen key (the `Idempotency-Key` header) again. */
  readonly key?: string
}

/** The first ref of `expected` (ref → client) that `owners` (keyPackageOwners) does not give to the same client. */
export function changedRef(expected: ReadonlyMap<string, string> | undefined, owners: ReadonlyMap<string, string>): string | undefined {
  for (const [ref, client] of expected ?? []) if (owners.get(ref) !== client) return ref
  return undefined
}

/** What an accepted append also does, in the same atomic step (RFC 9420 §14: Welcome only with its Commit). */
export interface AppendEffects {
  /** The GroupInfo (and ratchet tree) of the epoch the commit starts. */
  readonly groupInfo?: GroupInfoRecord
  /**
   * A Welcome for these clients: queued in their inboxes, and they become members. `refs`: the
   * KeyPackageRefs the recipients were found by (ref → client, keyPackageOwners), checked again
   * in the same step at the message's receivedAt: one no longer handed out to that client (its
   * client deleted, or expired since) refuses the append, so no Welcome reaches a deleted client.
   */
  readonly welcome?: { readonly data: Uint8Array; readonly recipients: readonly string[]; readonly refs?: ReadonlyMap<string, string> }
  /**
   * The sender becomes a member, after the message (it is not one of its recipients): an
   * external commit (RFC 9420 §12.4.3.2), whose sender joins by it. Idempotent for a member.
   */
  readonly senderJoins?: boolean
}

export type AppendResult =
  | {
    readonly ok: true
    readonly seq: number
    readonly epoch: number
    readonly messageType: MessageType
    /** True when this was a retry of an accepted message: nothing new was stored or delivered. */
    readonly duplicate: boolean
    /** Clients whose delivery queues got something (to wake their live streams). */
    readonly recipients: readonly string[]
  }
  | { readonly ok: false; readonly reason: 'no_group' | 'not_member' }
  | { readonly ok: false; readonly reason: 'stale_epoch'; readonly currentEpoch: number }
  /** A ref of `welcome.refs` is no longer handed out to its client. */
  | { readonly ok: false; readonly reason: 'unknown_ref'; readonly ref: string }

export interface GroupInfoRecord {
  readonly epoch: number
  readonly data: Uint8Array
  readonly ratchetTree: Uint8Array | null
  readonly storedAt: number
}

export type DeliveryKind = 'message' | 'welcome'

/** One entry of a client's queue: a group message for a member, or a Welcome for its recipient. */
export interface NewDelivery {
  readonly groupId: string
  /** The seq of the message in its group (for a Welcome: of the Commit it came with). */
  readonly groupSeq: number
  readonly senderId: string
  readonly kind: DeliveryKind
  readonly messageType: MessageType
  readonly epoch: number | null
  readonly contentType: ContentType | null
  readonly data: Uint8Array
  readonly receivedAt: number
}

export interface Delivery extends NewDelivery {
  /** Position in the client's own queue: 1, 2, 3, … across all its groups. */
  readonly seq: number
}

/** One client's queue after a seq, for readDeliveryPages. */
export interface QueueRead {
  readonly clientId: string
  readonly after: number
}

export interface DeliveryPage {
  readonly deliveries: Delivery[]
  /** Set when retention dropped deliveries after `after` that were never acknowledged. */
  readonly gap?: { readonly missedFrom: number; readonly firstAvailableSeq: number }
  readonly lastSeq: number
}

export type AckResult =
  | { readonly ok: true; readonly ackedUpTo: number; readonly remaining: number }
  | { readonly ok: false; readonly lastSeq: number }

export interface WelcomeRecord {
  /** Position in the recipient's inbox: 1, 2, 3, … */
  readonly seq: number
  readonly groupId: string
  readonly senderId: string
  readonly data: Uint8Array
  readonly receivedAt: number
}

export type RemoveMemberResult = 'removed' | 'not_member' | 'no_group'

/** What deleteClient erased, counted. */
export interface ClientDeletion {
  /** Groups the client was a member of, and is not any more. */
  readonly groups: number
  /** KeyPackages it could still hand out at `now`, of every kind (expired ones go too, uncounted). */
  readonly keyPackages: number
  /** Deliveries still in its queue. */
  readonly deliveries: number
  /** Welcomes still in its inbox. */
  readonly welcomes: number
}

export interface Store {
  /** A short name for health output ("memory", "postgres", …). */
  readonly kind: string
  /** Resolves when the backend answers; throws StoreUnavailableError when it cannot be reached (GET /ready). */
  ping(): Promise<void>

  /** Adds packages to the client's pool (a legacy one replaces the client's legacy one); returns how many are available. */
  addKeyPackages(clientId: string, records: readonly KeyPackageRecord[], now: number): Promise<number>
  /**
   * Hands out one package: the oldest consumable one is removed; a last-resort one only when no
   * other is left, and kept; the legacy one last, and kept. Expired packages are purged. The
   * handed-out ref is remembered as the client's, in the same step (for Welcome routing), until
   * the package's notAfter; one without a known lifetime until `query.now` + retention.maxAgeMs
   * (a Welcome made later would have aged out of its recipient's inbox anyway). Refs whose time
   * has passed are forgotten a few at a time as claims go on.
   */
  claimKeyPackage(clientId: string, query: ClaimQuery): Promise<KeyPackageRecord | undefined>
  /**
   * Client ids with at least one package that can be handed out, in id order (id-order.ts: code
   * point order, the same on every store), after `page.after` and at most `page.limit`.
   */
  listKeyPackageClients(now: number, page?: IdPage): Promise<string[]>
  countKeyPackages(clientId: string, now: number): Promise<KeyPackageCount>
  /** Removes all of the client's packages; returns how many there were. */
  deleteKeyPackages(clientId: string): Promise<number>
  /** Removes one package by ref; false when the client has no such package. */
  deleteKeyPackage(clientId: string, ref: string): Promise<boolean>
  /**
   * The clients that the given handed-out refs belonged to; unknown and expired refs (see
   * claimKeyPackage) are absent. `now` is unix seconds, the wall clock when not given.
   */
  keyPackageOwners(refs: readonly string[], now?: number): Promise<Map<string, string>>

  /** Creates the group with its creator as first member; undefined when the id is taken. */
  createGroup(group: NewGroup): Promise<GroupRecord | undefined>
  getGroup(groupId: string): Promise<GroupRecord | undefined>
  /** Deletes the group and its messages; false when there was none. */
  deleteGroup(groupId: string): Promise<boolean>
  /** Adds a member (idempotent); undefined when there is no such group. */
  addMember(groupId: string, clientId: string): Promise<GroupRecord | undefined>
  removeMember(groupId: string, clientId: string): Promise<RemoveMemberResult>
  /** The groups the client is a member of, in id order (as listKeyPackageClients), a page at a time. */
  listClientGroups(clientId: string, page?: IdPage): Promise<string[]>
  /**
   * Erases a client, one atomic step: it leaves every group (the groups stay), its KeyPackages
   * and the refs handed out for it (they route no Welcome any more) are deleted, and its queue and
   * Welcome inbox are emptied (`now`, unix seconds: which KeyPackages count as still usable).
   * Their seqs are kept, so a seq is never used twice for the client: a cursor a device still
   * holds skips nothing that comes later. A join or an append racing it comes wholly before it
   * or wholly after it. An append to one of its groups
   * either happened before (its delivery is erased too) or after (the client is not a recipient).
   * Messages it sent stay in their groups' logs.
   */
  deleteClient(clientId: string, now: number): Promise<ClientDeletion>
  /**
   * Appends with the next seq of the group, only if the condition holds, and applies the effects
   * with it. Keeps a copy of message.data, never the caller's bytes (they may be in a shared
   * pool); a Welcome whose data is message.data is kept as that same copy.
   */
  appendMessage(groupId: string, message: NewMessage, condition: AppendCondition, effects?: AppendEffects): Promise<AppendResult>
  /**
   * Messages with seq > after, in seq order, at most `limit` and, after the first, at most
   * `maxBytes` of data in all (page-budget.ts; none when not given); undefined when there is no
   * such group. Every read below takes `maxBytes` alike: what does not fit is not loaded.
   */
  readMessages(groupId: string, after: number, limit: number, maxBytes?: number): Promise<MessagePage | undefined>
  /**
   * Drops from every group's log its oldest messages received before `before` (unix ms): a
   * prefix of the log up to its first message received at or after `before` (which keeps the
   * older ones after it), so what a log keeps stays one run of seqs. The caller drops only
   * messages older than the queues' max age (GROUP_LOG_MAX_AGE >= QUEUE_MAX_AGE): a delivery of
   * one may go with it, as its queue's retention would drop it anyway and tell the reader.
   * A bounded batch: returns how many were dropped; call again until 0.
   */
  purgeGroupLogs(before: number): Promise<number>
  /** The latest GroupInfo of the group; undefined when there is no group or no GroupInfo. */
  getGroupInfo(groupId: string): Promise<GroupInfoRecord | undefined>
  /**
   * Welcomes routed to the client with seq > after, in order, at most `limit`. The inbox keeps
   * the queues' retention (applied on append and here at `now`, unix ms, the wall clock when not
   * given): the oldest go first, and seqs are never renumbered.
   */
  readWelcomes(clientId: string, after: number, limit: number, now?: number, maxBytes?: number): Promise<WelcomeRecord[]>

  /**
   * The client's queued deliveries with seq > after, in order (retention applied at `now`): at
   * most `limit` and within `maxBytes`. A page ends before `lastSeq` only because of those two.
   */
  readDeliveries(clientId: string, after: number, limit: number, now: number, maxBytes?: number): Promise<DeliveryPage>
  /**
   * Several queues at once, each page exactly as readDeliveries would answer it, in the order
   * asked (a client may appear twice, at two cursors): live streams woken by one message read
   * together, in one database round trip where the store has a database.
   */
  readDeliveryPages(reads: readonly QueueRead[], limit: number, now: number, maxBytes?: number): Promise<DeliveryPage[]>
  /** Drops the client's deliveries up to `upTo`; refused when upTo is beyond its last delivery. */
  ackDeliveries(clientId: string, upTo: number): Promise<AckResult>

  close(): Promise<void>
}
