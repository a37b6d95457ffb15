import type { Logger } from 'pino'
import { RateLimiterRes } from 'rate-limiter-flexible'
import type { ValidationMode } from '../config.js'
import { ServiceError } from '../errors.js'
import { equalBytes, isKnownCiphersuite, isMlsValidationError, supportedCiphersuites, verifyExternalCommit } from '../mls/index.js'
import type {
  AppendEffects,
  ClientDeletion,
  GroupInfoRecord,
  GroupRecord,
  KeyPackageCount,
  KeyPackageRecord,
  MessagePage,
  MessageType,
  NewMessage,
  Store,
  DeliveryPage,
  WelcomeRecord,
} from '../storage/store.js'
import type { RateLimiter } from '../storage/rate-limiter.js'
import type { IdPage } from '../storage/id-order.js'
import type { PushNotifier } from '../push/notifier.js'
import { LocalDeliveryBus, type DeliveryBus } from './delivery-bus.js'
import { DeliveryWaiter } from './delivery-waiter.js'
import { assertId } from './ids.js'
import { ServiceMetrics } from './metrics.js'
import { QueueReader } from './queue-reader.js'
import { STREAM_PAGE, Subscription, type DeliverySink } from './subscription.js'
import { toKeyPackageRecords, type InspectKeyPackage } from './key-package-intake.js'
import { checkGroupInfo, classifyMessage, inspectOrReject, type ClassifiedMessage } from './message-intake.js'

export const DEFAULT_READ_LIMIT = 100
export const MAX_READ_LIMIT = 1000
/** A page of the list of clients with KeyPackages: at most this many ids (REST's default too). */
export const MAX_CLIENT_LIST_LIMIT = 1000

/** A page of the clients with KeyPackages; `nextAfter` when more follow (ask again with it as `after`). */
export interface ClientListPage {
  readonly clients: string[]
  readonly nextAfter?: string
}

/** A page of the groups a client is a member of; `nextAfter` when more follow. */
export interface GroupListPage {
  readonly groups: string[]
  readonly nextAfter?: string
}
/** The default MAX_MESSAGE_BYTES. */
export const DEFAULT_PAGE_BYTES = 1024 * 1024
const DAY = 86400

export interface MlsPolicy {
  readonly allowedCiphersuites: ReadonlySet<number>
  readonly maxLifetimeSeconds: number
}

export interface ServiceOptions {
  readonly store: Store
  readonly log: Pick<Logger, 'info' | 'debug' | 'warn'>
  readonly mls?: MlsPolicy
  /** Wakes live streams; in-process by default. */
  readonly bus?: DeliveryBus
  /** Injected for tests; unix milliseconds. */
  readonly now?: () => number
  /** Validates uploaded KeyPackages; inspectKeyPackage on this thread by default (a worker pool in the runtime). */
  readonly inspectKeyPackage?: InspectKeyPackage
  /** Where the service counts what it does (GET /metrics); a fresh one when not given. */
  readonly metrics?: ServiceMetrics
  /** Counts the claims of each client's KeyPackages for KEY_PACKAGE_CLAIM_LIMIT (the backend's, shared by its instances); no limit when not given. */
  readonly claimLimiter?: RateLimiter
  /** Counts the messages of each sender for MESSAGE_RATE_LIMIT (the backend's, shared by its instances); no limit when not given. */
  readonly messageLimiter?: RateLimiter
  /**
   * The most message data one page of a read holds, over both doors and live streams (always at
   * least one message, page-budget.ts); MAX_MESSAGE_BYTES in the runtime, DEFAULT_PAGE_BYTES if not given.
   */
  readonly pageMaxBytes?: number
  /** Push notifications (PUSH_WEBHOOK_URL): told of every accepted message's recipients; none when not given. */
  readonly push?: Pick<PushNotifier, 'notify'>
  /** MLS_EXTERNAL_COMMITS: whether clients may join a group by an external commit (true when not given). */
  readonly externalCommits?: boolean
}

/** Each door says how it treats bytes that are not MLS (strict on REST, permissive on TCP by default). */
export interface IntakeOptions {
  readonly validation?: ValidationMode
}

export interface StoreKeyPackagesResult {
  readonly clientId: string
  readonly stored: number
  readonly available: number
}

export interface RelayRequest {
  readonly groupId: string
  readonly senderId: string
  readonly message: Uint8Array
  readonly messageType?: MessageType
  /** A client-chosen key: a retry with the same key returns the original result. */
  readonly idempotencyKey?: string
}

export interface RelayResult {
  readonly groupId: string
  readonly seq: number
  /** The group's epoch after this message. */
  readonly epoch: number
  readonly messageType: MessageType
  /** True when this was a retry of a message already accepted: nothing new was stored. */
  readonly duplicate: boolean
}

export interface CommitBundle {
  readonly groupId: string
  readonly senderId: string
  readonly commit: Uint8Array
  readonly welcome?: Uint8Array
  readonly groupInfo?: Uint8Array
  readonly ratchetTree?: Uint8Array
  /** Route the Welcome to these clients instead of looking up its KeyPackageRefs. */
  readonly welcomeRecipients?: readonly string[]
  readonly idempotencyKey?: string
}

/**
 * The delivery rules, shared by the REST and the TCP door. It imports neither fastify nor
 * net: doors validate the shape of a request, call one method, and map the result or the
 * ServiceError it throws.
 */
export class DeliveryService {
  readonly #store: Store
  readonly #log: ServiceOptions['log']
  readonly #mls: MlsPolicy
  readonly #bus: DeliveryBus
  readonly #now: () => number
  /** Live streams' reads, batched per turn of the event loop. */
  readonly #streamReads: QueueReader
  readonly #inspectKeyPackage: InspectKeyPackage | undefined
  /** What this service counted, for both doors. */
  readonly metrics: ServiceMetrics
  /** KEY_PACKAGE_CLAIM_LIMIT: fixed windows per claimed client. */
  readonly #claims: RateLimiter | undefined
  /** MESSAGE_RATE_LIMIT: fixed windows per sender. */
  readonly #messages: RateLimiter | undefined
  readonly #pageMaxBytes: number
  readonly #push: ServiceOptions['push']
  readonly #externalCommits: boolean

  constructor(options: ServiceOptions) {
    this.metrics = options.metrics ?? new ServiceMetrics()
    this.#claims = options.claimLimiter
    this.#messages = options.messageLimiter
    this.#store = options.store
    this.#log = options.log
    this.#mls = options.mls ?? { allowedCiphersuites: new Set(supportedCiphersuites().map((s) => s.id)), maxLifetimeSeconds: 90 * DAY }
    this.#bus = options.bus ?? new LocalDeliveryBus()
    this.#now = options.now ?? Date.now
    this.#pageMaxBytes = options.pageMaxBytes ?? DEFAULT_PAGE_BYTES
    this.#streamReads = new QueueReader(this.#store, { limit: STREAM_PAGE, maxBytes: this.#pageMaxBytes }, this.#now)
    this.#inspectKeyPackage = options.inspectKeyPackage
    this.#push = options.push
    this.#externalCommits = options.externalCommits ?? true
  }

  get storeKind(): string {
    return this.#store.kind
  }

  /** Resolves when the store answers; throws a 503 ServiceError when its database is unreachable. */
  ping(): Promise<void> {
    return this.#store.ping()
  }

  async storeKeyPackages(clientId: string, packages: readonly Uint8Array[], options: IntakeOptions = {}): Promise<StoreKeyPackagesResult> {
    assertId('client_id', clientId)
    if (packages.length === 0) throw new ServiceError('bad_request', 'key_packages must hold at least one KeyPackage')
    const now = new Date(this.#now())
    const records = await toKeyPackageRecords(packages, options.validation ?? 'strict', { ...this.#mls, now }, this.#inspectKeyPackage)
    const available = await this.#store.addKeyPackages(clientId, records, seconds(now.getTime()))
    this.metrics.keyPackagesStored(records.length)
    this.#log.info(`Stored KeyPackage for client: ${clientId}`)
    return { clientId, stored: records.length, available }
  }

  /** Claims one KeyPackage of the client (removed unless last-resort or legacy); undefined when none. */
  async fetchKeyPackage(clientId: string, options: { ciphersuite?: number } = {}): Promise<KeyPackageRecord | undefined> {
    assertId('client_id', clientId)
    if (options.ciphersuite !== undefined && !isKnownCiphersuite(options.ciphersuite)) {
      throw new ServiceError('bad_request', `ciphersuite ${options.ciphersuite} is not a known MLS ciphersuite`)
    }
    const overLimit = await this.#countClaim(clientId)
    // Beyond the limit, the one-time KeyPackages stay put; the kept one (last-resort) still lets
    // others add the client, which is what it is for (RFC 9420 §16.8).
    const record = await this.#store.claimKeyPackage(clientId, { now: this.#seconds(), ciphersuite: options.ciphersuite, keptOnly: overLimit !== undefined })
    // Refused only when the limit is what holds a KeyPackage back: with none to hold back the
    // answer is "none", as within the limit (a legacy client's FetchKeyPackage expects null).
    if (overLimit && !record && (await this.#oneTimeKeyPackages(clientId, options.ciphersuite)) > 0) {
      this.metrics.keyPackageClaim('rate_limited')
      const retryAfter = Math.max(1, Math.ceil(overLimit.msBeforeNext / 1000))
      throw new ServiceError(
        'rate_limited',
        `KeyPackages of ${clientId} were asked for ${this.#claims!.points} times within ${this.#claims!.duration} s (KEY_PACKAGE_CLAIM_LIMIT): its one-time KeyPackages are held back and it has no last-resort KeyPackage; retry in ${retryAfter} s`,
        { retry_after: retryAfter },
      )
    }
    this.metrics.keyPackageClaim(!record ? 'none' : overLimit ? 'last_resort_over_limit' : record.lastResort || record.legacy ? 'last_resort' : 'claimed')
    this.#log.debug({ clientId, ref: record?.ref }, 'Claimed KeyPackage')
    return record
  }

  /**
   * The clients with a KeyPackage to hand out, in id order (code point order, the same on every
   * store), after `page.after`; at most `page.limit` (1..MAX_CLIENT_LIST_LIMIT), every one when
   * there is no limit (the legacy ListKeyPackages). One more is read to know whether more follow.
   */
  async listKeyPackageClients(page: IdPage = {}): Promise<ClientListPage> {
    const { ids, nextAfter } = await pageOf(page, (wider) => this.#store.listKeyPackageClients(this.#seconds(), wider))
    return { clients: ids, ...(nextAfter === undefined ? {} : { nextAfter }) }
  }

  /** The groups the client is a member of, in id order, a page at a time (as listKeyPackageClients). */
  async listClientGroups(clientId: string, page: IdPage = {}): Promise<GroupListPage> {
    assertId('client_id', clientId)
    const { ids, nextAfter } = await pageOf(page, (wider) => this.#store.listClientGroups(clientId, wider))
    return { groups: ids, ...(nextAfter === undefined ? {} : { nextAfter }) }
  }

  /**
   * Erases a client (Store.deleteClient): it leaves every group, its KeyPackages, the refs handed
   * out for it, its queued deliveries and Welcomes are gone; its queue's seqs go on. Deleting a
   * client that has nothing is not an error (a retry after a lost answer gets zeros).
   */
  async deleteClient(clientId: string): Promise<ClientDeletion> {
    assertId('client_id', clientId)
    const deleted = await this.#store.deleteClient(clientId, this.#seconds())
    this.metrics.clientDeleted()
    this.#log.info({ clientId, ...deleted }, 'Deleted client')
    return deleted
  }

  async countKeyPackages(clientId: string): Promise<KeyPackageCount> {
    assertId('client_id', clientId)
    return this.#store.countKeyPackages(clientId, this.#seconds())
  }

  async deleteKeyPackages(clientId: string): Promise<number> {
    assertId('client_id', clientId)
    return this.#store.deleteKeyPackages(clientId)
  }

  async deleteKeyPackage(clientId: string, ref: string): Promise<void> {
    assertId('client_id', clientId)
    if (!(await this.#store.deleteKeyPackage(clientId, ref.toLowerCase()))) {
      throw new ServiceError('key_package_not_found', `Client ${clientId} has no KeyPackage ${ref}`)
    }
  }

  async createGroup(groupId: string, creatorId: string, options: { epoch?: number } = {}): Promise<GroupRecord> {
    assertId('group_id', groupId)
    assertId('creator_id', creatorId)
    const epoch = options.epoch ?? 0
    assertWhole('epoch', epoch)
    const group = await this.#store.createGroup({ groupId, creatorId, epoch, createdAt: this.#now() })
    if (!group) throw new ServiceError('group_exists', `Group already exists: ${groupId}`)
    this.metrics.group('created')
    this.#log.info(`Created group: ${groupId} by ${creatorId}`)
    return group
  }

  async getGroup(groupId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    return orNotFound(await this.#store.getGroup(groupId), groupId)
  }

  async deleteGroup(groupId: string): Promise<void> {
    assertId('group_id', groupId)
    if (!(await this.#store.deleteGroup(groupId))) throw groupNotFound(groupId)
    this.metrics.group('deleted')
    this.#log.info(`Deleted group: ${groupId}`)
  }

  async joinGroup(groupId: string, clientId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    assertId('client_id', clientId)
    const group = orNotFound(await this.#store.addMember(groupId, clientId), groupId)
    this.#log.info(`Client ${clientId} joined group ${groupId}`)
    return group
  }

  async leaveGroup(groupId: string, clientId: string): Promise<GroupRecord> {
    assertId('group_id', groupId)
    assertId('client_id', clientId)
    const result = await this.#store.removeMember(groupId, clientId)
    if (result === 'no_group') throw groupNotFound(groupId)
    if (result === 'not_member') throw new ServiceError('member_not_found', `Client not in group: ${clientId}`)
    this.#log.info(`Client ${clientId} left group ${groupId}`)
    return orNotFound(await this.#store.getGroup(groupId), groupId)
  }

  async relayMessage(request: RelayRequest, options: IntakeOptions = {}): Promise<RelayResult> {
    const { groupId, senderId, message } = request
    assertId('group_id', groupId)
    assertId('sender_id', senderId)
    if (message.length === 0) throw new ServiceError('bad_request', 'message must not be empty')
    await this.#countMessage(senderId)
    const classified = await this.#externalJoin(groupId, senderId, message, classifyMessage(groupId, message, request.messageType, options.validation ?? 'strict'))
    const routed = classified.welcomeRefs ? await this.#welcomeRecipients(classified.welcomeRefs) : undefined
    const result = await this.#append(groupId, senderId, message, classified, request.idempotencyKey, {
      welcome: routed ? { data: message, ...routed } : undefined,
      senderJoins: classified.externalCommit,
    })
    this.#log.info('Relayed message from %s to group %s', senderId, groupId)
    return result
  }

  /**
   * One atomic step: epoch check, append the Commit, keep the GroupInfo of the new epoch, and
   * only then route the Welcome. A rejected Commit routes nothing (RFC 9420 §14).
   */
  async commit(bundle: CommitBundle): Promise<RelayResult> {
    const { groupId, senderId } = bundle
    assertId('group_id', groupId)
    assertId('sender_id', senderId)
    await this.#countMessage(senderId)
    const classified = classifyMessage(groupId, bundle.commit, undefined, 'strict')
    if (classified.contentType !== 'commit' || classified.epoch === null) {
      throw new ServiceError('invalid_message', `commit: the message is ${classified.contentType ?? 'not MLS'}, not a Commit`)
    }
    if (classified.externalCommit && bundle.welcome) throw new ServiceError('bad_request', 'an external commit adds no one but its sender: it comes without a welcome (RFC 9420 §12.4.3.2)')
    const groupInfo = bundle.groupInfo ? await checkGroupInfo(groupId, bundle.groupInfo, bundle.ratchetTree, classified.epoch + 1, this.#now()) : undefined
    if (!bundle.groupInfo && bundle.ratchetTree) throw new ServiceError('bad_request', 'ratchet_tree is only accepted together with group_info')
    let welcome: AppendEffects['welcome']
    if (bundle.welcome) {
      const inspection = inspectOrReject(bundle.welcome, 'welcome')
      if (inspection.kind !== 'welcome') throw new ServiceError('invalid_message', 'welcome: the bytes are not an MLS Welcome')
      bundle.welcomeRecipients?.forEach((r) => assertId('welcome_recipients[]', r))
      const routed = bundle.welcomeRecipients ? { recipients: bundle.welcomeRecipients } : await this.#welcomeRecipients(inspection.newMembers)
      welcome = { data: bundle.welcome, ...routed }
    } else if (bundle.welcomeRecipients) {
      throw new ServiceError('bad_request', 'welcome_recipients is only accepted together with welcome')
    }
    const admitted = await this.#externalJoin(groupId, senderId, bundle.commit, classified)
    const result = await this.#append(groupId, senderId, bundle.commit, admitted, bundle.idempotencyKey, { groupInfo, welcome, senderJoins: admitted.externalCommit })
    this.#log.info('Relayed message from %s to group %s', senderId, groupId)
    return result
  }

  /** A page of the group's log after `after`; its `firstSeq` says whether GROUP_LOG_MAX_AGE dropped some after `after`. */
  async readMessages(groupId: string, after = 0, limit = DEFAULT_READ_LIMIT): Promise<MessagePage> {
    assertId('group_id', groupId)
    assertPage(after, limit)
    return orNotFound(await this.#store.readMessages(groupId, after, limit, this.#pageMaxBytes), groupId)
  }

  async readWelcomes(clientId: string, after = 0, limit = DEFAULT_READ_LIMIT): Promise<WelcomeRecord[]> {
    assertId('client_id', clientId)
    assertPage(after, limit)
    return this.#store.readWelcomes(clientId, after, limit, this.#now(), this.#pageMaxBytes)
  }

  /** The client's queue after a seq; `gap` says when retention dropped deliveries it never acknowledged. */
  async readDeliveries(clientId: string, after = 0, limit = DEFAULT_READ_LIMIT): Promise<DeliveryPage> {
    assertId('client_id', clientId)
    assertPage(after, limit)
    return this.#store.readDeliveries(clientId, after, limit, this.#now(), this.#pageMaxBytes)
  }

  /**
   * readDeliveries that waits when there is nothing to read (long polling): up to `waitMs` for a
   * delivery after `after`, answered as soon as one is queued; the page, empty or not, when the
   * time is up or `signal` aborts.
   */
  async waitForDeliveries(clientId: string, after: number, limit: number, waitMs: number, signal?: AbortSignal): Promise<DeliveryPage> {
    assertId('client_id', clientId)
    assertPage(after, limit)
    if (waitMs <= 0) return this.readDeliveries(clientId, after, limit)
    const waiter = new DeliveryWaiter(this.#bus, clientId, waitMs, signal)
    try {
      for (;;) {
        const page = await this.readDeliveries(clientId, after, limit)
        // A wake for a delivery at or before `after` (a cursor beyond the queue) reads an empty page again and waits on.
        if (page.deliveries.length > 0 || page.gap || !(await waiter.next())) return page
      }
    } finally {
      waiter.close()
    }
  }

  async ack(clientId: string, upTo: number): Promise<{ ackedUpTo: number; remaining: number }> {
    assertId('client_id', clientId)
    assertWhole('up_to', upTo)
    const result = await this.#store.ackDeliveries(clientId, upTo)
    if (!result.ok) throw new ServiceError('bad_request', `up_to ${upTo} is beyond the last delivery of ${clientId} (${result.lastSeq})`)
    return { ackedUpTo: result.ackedUpTo, remaining: result.remaining }
  }

  /** Throws what subscribe() would refuse, so a transport can answer before it commits (a WebSocket before its upgrade). */
  checkSubscription(clientId: string, after: number): void {
    assertId('client_id', clientId)
    assertWhole('after', after)
  }

  /** A live stream of the client's queue after `after`; call start() once the sink is ready. */
  subscribe(clientId: string, after: number, sink: DeliverySink): Subscription {
    this.checkSubscription(clientId, after)
    return new Subscription({ reader: this.#streamReads, bus: this.#bus, clientId, after, sink, log: this.#log, gauge: this.metrics })
  }

  async getGroupInfo(groupId: string): Promise<GroupInfoRecord> {
    assertId('group_id', groupId)
    const info = await this.#store.getGroupInfo(groupId)
    if (info) return info
    orNotFound(await this.#store.getGroup(groupId), groupId)
    throw new ServiceError('group_info_not_found', `No GroupInfo stored for group: ${groupId}`)
  }

  async #append(
    groupId: string,
    senderId: string,
    data: Uint8Array,
    classified: ClassifiedMessage,
    idempotencyKey: string | undefined,
    effects: Parameters<Store['appendMessage']>[3],
  ): Promise<RelayResult> {
    // A retry is the same client-chosen key, or the same MLS bytes from the same sender (MLS
    // messages are unique, so equal bytes can only be a retry). Opaque legacy bytes are not
    // compared: the original clients relay the same placeholder again and again.
    const retry = { sameBytes: classified.contentType !== null, key: idempotencyKey }
    const message: NewMessage = {
      senderId,
      messageType: classified.messageType,
      data,
      receivedAt: this.#now(),
      epoch: classified.epoch,
      contentType: classified.contentType,
    }
    const { senderMustBeMember, epoch } = classified.condition
    const result = await this.#store.appendMessage(groupId, message, { senderMustBeMember, epoch, retry }, effects)
    if (result.ok) {
      if (result.duplicate && idempotencyKey !== undefined) await this.#assertRetryOf(groupId, senderId, result.seq, data, idempotencyKey)
      if (result.duplicate) this.metrics.messageRetried()
      else this.metrics.messageAccepted(classified.contentType, result.recipients.length)
      if (effects?.senderJoins && !result.duplicate) this.#log.info(`Client ${senderId} joined group ${groupId} by an external commit`)
      this.#bus.publish(result.recipients)
      // A retry has no recipients: it delivered nothing new.
      this.#push?.notify(result.recipients)
      return { groupId, seq: result.seq, epoch: result.epoch, messageType: result.messageType, duplicate: result.duplicate }
    }
    switch (result.reason) {
      case 'no_group':
        throw groupNotFound(groupId)
      case 'not_member':
        throw new ServiceError('not_member', `Sender not in group: ${senderId}`)
      case 'stale_epoch':
        // An external commit raced by another commit: the joiner's answer tells nothing of the epoch.
        if (effects?.senderJoins) throw externalRefused()
        throw new ServiceError(
          'stale_epoch',
          `Stale epoch: the message is for epoch ${classified.epoch}, the group is at epoch ${result.currentEpoch}`,
          { current_epoch: result.currentEpoch },
        )
      case 'unknown_ref':
        // Its client was deleted (or it expired) after the refs were read: as if it had been before.
        throw unknownRef(result.ref)
    }
  }

  /**
   * An external commit (RFC 9420 §12.4.3.2) lets a client that is not a member join. From a
   * member (a resync; or any sender with MLS_EXTERNAL_COMMITS off) it is taken as any commit:
   * members only, no join. From anyone else it is taken only for the group's current epoch, with
   * the GroupInfo of that epoch kept, and a signature that verifies against its GroupContext
   * (verifyExternalCommit): a client that does not hold that GroupInfo cannot end the epoch. The
   * append checks the epoch again, atomically, so a commit that raced ahead is refused there.
   * Every refusal to a non-member is the same answer (externalRefused), so one who cannot read
   * the group learns nothing of its epoch or GroupInfo from it.
   */
  async #externalJoin(groupId: string, senderId: string, commit: Uint8Array, classified: ClassifiedMessage): Promise<ClassifiedMessage> {
    if (!classified.externalCommit) return classified
    const asMemberCommit = { ...classified, externalCommit: false, condition: { ...classified.condition, senderMustBeMember: true } }
    if (!this.#externalCommits) return asMemberCommit
    const [group, info] = await Promise.all([this.#store.getGroup(groupId), this.#store.getGroupInfo(groupId)])
    const { epoch, members } = orNotFound(group, groupId)
    // A retry of an accepted external commit comes from a member too: the append answers it.
    if (members.includes(senderId)) return asMemberCommit
    if (epoch !== classified.epoch || info?.epoch !== classified.epoch) throw externalRefused()
    try {
      await verifyExternalCommit(commit, info.data)
    } catch (err) {
      if (!isMlsValidationError(err)) throw err
      throw externalRefused()
    }
    return classified
  }

  /**
   * A retry found by its Idempotency-Key must carry the bytes it stood for: a key used again for
   * other bytes (a client bug) would otherwise be answered with the earlier message's seq, and
   * its sender would take a message, or a Commit, that was never stored as accepted. Read back
   * only on a retry; logged messages never change, so the answer cannot go stale.
   */
  async #assertRetryOf(groupId: string, senderId: string, seq: number, data: Uint8Array, key: string): Promise<void> {
    const [stored] = (await this.#store.readMessages(groupId, seq - 1, 1))?.messages ?? []
    if (stored?.seq === seq && equalBytes(stored.data, data)) return
    throw new ServiceError(
      'idempotency_key_reused',
      `Idempotency-Key ${JSON.stringify(key)} was used by ${senderId} for another message of this group (seq ${seq}) within IDEMPOTENCY_WINDOW; a new message needs a new key`,
      { seq },
    )
  }

  /**
   * KeyPackage exhaustion (RFC 9420 §16.8): anyone may claim, so the claims of one client's
   * KeyPackages are counted per window, whoever asks and through whichever door. Returns the
   * limiter's answer when this claim is beyond the limit, undefined within it.
   */
  async #countClaim(clientId: string): Promise<RateLimiterRes | undefined> {
    if (!this.#claims) return undefined
    try {
      await this.#claims.consume(clientId)
      return undefined
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res
      return res
    }
  }

  /**
   * MESSAGE_RATE_LIMIT: the messages of one sender (group messages and commits, through any door
   * or stream) are counted per window before anything else is done with them, so a flood costs a
   * counter, not MLS decoding or a store write. Beyond the limit: 429 rate_limited, stored nothing.
   */
  async #countMessage(senderId: string): Promise<void> {
    if (!this.#messages) return
    try {
      await this.#messages.consume(senderId)
    } catch (res) {
      if (!(res instanceof RateLimiterRes)) throw res
      const retryAfter = Math.max(1, Math.ceil(res.msBeforeNext / 1000))
      throw new ServiceError(
        'rate_limited',
        `${senderId} sent ${this.#messages.points} messages within ${this.#messages.duration} s (MESSAGE_RATE_LIMIT); retry in ${retryAfter} s`,
        { retry_after: retryAfter },
      )
    }
  }

  /** How many one-time KeyPackages (of the ciphersuite, if given) a claim beyond the limit held back. */
  async #oneTimeKeyPackages(clientId: string, ciphersuite: number | undefined): Promise<number> {
    const count = await this.#store.countKeyPackages(clientId, this.#seconds())
    // Called when no kept KeyPackage matched, so what matches is one-time.
    return ciphersuite === undefined ? count.total - count.lastResort - count.legacy : (count.byCiphersuite.get(ciphersuite) ?? 0)
  }

  /** The clients a Welcome's KeyPackageRefs were handed out to, and the refs, which the append checks again (AppendEffects.welcome). */
  async #welcomeRecipients(refs: readonly string[]): Promise<{ recipients: string[]; refs: Map<string, string> }> {
    const owners = await this.#store.keyPackageOwners(refs, this.#seconds())
    const unknown = refs.find((ref) => !owners.has(ref))
    if (unknown !== undefined) throw unknownRef(unknown)
    return { recipients: [...new Set(refs.map((ref) => owners.get(ref)!))], refs: owners }
  }

  #seconds(): number {
    return seconds(this.#now())
  }
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000)
}

/** A seq, cursor or epoch: a whole number a JavaScript number holds exactly. */
function assertWhole(field: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new ServiceError('bad_request', `${field} must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`)
}

function assertPage(after: number, limit: number): void {
  assertWhole('after', after)
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_READ_LIMIT) {
    throw new ServiceError('bad_request', `limit must be a whole number from 1 to ${MAX_READ_LIMIT}`)
  }
}

/** The one answer to a refused external commit from a non-member (see #externalJoin). */
function externalRefused(): ServiceError {
  return new ServiceError('invalid_message', "commit: the external commit is not for the group's current epoch, or does not verify against the GroupInfo the service keeps for it: fetch the GroupInfo again (GET /groups/{group}/group-info, or from a member) and make a new one", { check: 'external_commit' })
}

function groupNotFound(groupId: string): ServiceError {
  return new ServiceError('group_not_found', `Group not found: ${groupId}`)
}

/**
 * A page of ids after `page.after`, at most `page.limit` (1..MAX_CLIENT_LIST_LIMIT), every one
 * without a limit; one more is read to know whether more follow.
 */
async function pageOf(page: IdPage, read: (wider: IdPage) => Promise<string[]>): Promise<{ ids: string[]; nextAfter?: string }> {
  if (page.after !== undefined) assertId('after', page.after)
  const { limit } = page
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > MAX_CLIENT_LIST_LIMIT)) {
    throw new ServiceError('bad_request', `limit must be a whole number from 1 to ${MAX_CLIENT_LIST_LIMIT}`)
  }
  const ids = await read({ after: page.after, limit: limit === undefined ? undefined : limit + 1 })
  if (limit === undefined || ids.length <= limit) return { ids }
  ids.length = limit
  return { ids, nextAfter: ids[limit - 1]! }
}

function unknownRef(ref: string): ServiceError {
  return new ServiceError('invalid_message', `welcome: KeyPackageRef ${ref} is not one this service handed out (never claimed here, past its KeyPackage's lifetime, or its client was deleted); name the recipients in welcome_recipients`, { check: 'unknown_key_package_ref', ref })
}

function orNotFound<T>(value: T | undefined, groupId: string): T {
  if (value === undefined) throw groupNotFound(groupId)
  return value
}
