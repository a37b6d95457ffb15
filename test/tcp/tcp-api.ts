/**
 * An MLS client's view of the TCP door: one persistent connection, requests written at once
 * (pipelined) and answers read in order, and a group member that learns everything from the
 * DS over that connection (the TCP twin of test/helpers/rest-api.ts).
 */
import type net from 'node:net'
import type { CommitBundle, MlsTestClient } from '../helpers/mls-client.js'
import { LineReader, connect } from './helpers.js'

// Answers are JSON of several shapes; tests assert on their fields.
export type Answer = Record<string, any>

export const bytes = (b: Uint8Array): number[] => Array.from(b)
export const unbytes = (a: readonly number[]): Uint8Array => Uint8Array.from(a)

export interface CommitExtras {
  readonly welcome_recipients?: readonly string[]
  /** Leave out fields of the bundle. */
  readonly omit?: readonly ('welcome' | 'group_info' | 'ratchet_tree')[]
}

export class TcpApi {
  readonly #socket: net.Socket
  readonly #reader: LineReader
  /** The answer to the last request written; the next one is read after it. */
  #last: Promise<unknown> = Promise.resolve()

  private constructor(socket: net.Socket) {
    this.#socket = socket
    this.#reader = new LineReader(socket)
  }

  static async connect(port: number): Promise<TcpApi> {
    return new TcpApi(await connect(port))
  }

  /** Writes the request now; answers come back in request order, so calls may overlap. */
  call(request: Answer): Promise<Answer> {
    this.#socket.write(`${JSON.stringify(request)}\n`)
    const answer = this.#last.then(() => this.#reader.next(20_000), () => this.#reader.next(20_000))
    this.#last = answer
    return answer
  }

  close(): void {
    this.#socket.destroy()
  }

  storeKeyPackages(client: string, packages: readonly Uint8Array[]): Promise<Answer> {
    return this.call({ type: 'StoreKeyPackages', client_id: client, key_packages: packages.map(bytes) })
  }

  fetchKeyPackage(client: string, ciphersuite?: number): Promise<Answer> {
    return this.call({ type: 'FetchKeyPackage', client_id: client, ...(ciphersuite === undefined ? {} : { ciphersuite }) })
  }

  /** Claims one KeyPackage and returns its bytes; fails the test unless the DS had one. */
  async claimBytes(client: string, ciphersuite?: number): Promise<Uint8Array> {
    const answer = await this.fetchKeyPackage(client, ciphersuite)
    if (answer.type !== 'KeyPackageResponse' || answer.key_package === null) throw new Error(`claim ${client}: ${JSON.stringify(answer)}`)
    return unbytes(answer.key_package)
  }

  count(client: string): Promise<Answer> {
    return this.call({ type: 'CountKeyPackages', client_id: client })
  }

  createGroup(group: string, creator: string, epoch?: number): Promise<Answer> {
    return this.call({ type: 'CreateGroup', group_id: group, creator_id: creator, ...(epoch === undefined ? {} : { epoch }) })
  }

  getGroup(group: string): Promise<Answer> {
    return this.call({ type: 'GetGroup', group_id: group })
  }

  relay(group: string, sender: string, message: Uint8Array, messageType = 'Application'): Promise<Answer> {
    return this.call({ type: 'RelayMessage', group_id: group, sender_id: sender, message: bytes(message), message_type: messageType })
  }

  commit(group: string, sender: string, bundle: CommitBundle, extras: CommitExtras = {}): Promise<Answer> {
    const omit = new Set(extras.omit ?? [])
    const request: Answer = { type: 'CommitBundle', group_id: group, sender_id: sender, commit: bytes(bundle.commit) }
    if (bundle.welcome && !omit.has('welcome')) request.welcome = bytes(bundle.welcome)
    if (!omit.has('group_info')) request.group_info = bytes(bundle.groupInfo)
    if (!omit.has('ratchet_tree') && !omit.has('group_info')) request.ratchet_tree = bytes(bundle.ratchetTree)
    if (extras.welcome_recipients) request.welcome_recipients = extras.welcome_recipients
    return this.call(request)
  }

  /** Every message after `after`, reading page by page. */
  async messages(group: string, after = 0): Promise<Answer[]> {
    const all: Answer[] = []
    for (;;) {
      const answer = await this.call({ type: 'ReadMessages', group_id: group, after, limit: 1000 })
      if (answer.type !== 'MessagesResponse') throw new Error(`read ${group}: ${JSON.stringify(answer)}`)
      if (answer.messages.length === 0) return all
      all.push(...answer.messages)
      after = answer.messages.at(-1).seq
    }
  }

  async welcomes(client: string, after = 0): Promise<Answer[]> {
    const answer = await this.call({ type: 'ReadWelcomes', client_id: client, after })
    if (answer.type !== 'WelcomesResponse') throw new Error(`welcomes ${client}: ${JSON.stringify(answer)}`)
    return answer.welcomes
  }

  groupInfo(group: string): Promise<Answer> {
    return this.call({ type: 'GetGroupInfo', group_id: group })
  }
}

/**
 * A member of one group over its own TCP connection: Welcomes from its inbox, the ratchet
 * tree from the stored GroupInfo, and messages from the group log in seq order.
 */
export class TcpMember {
  /** The last seq of the group log this member has read. */
  cursor = 0
  /** Application messages decrypted so far, as `sender: text`. */
  readonly received: string[] = []
  #joinedEpoch = 0
  #welcomeCursor = 0

  constructor(readonly client: MlsTestClient, readonly api: TcpApi, readonly groupId: string) {}

  get name(): string {
    return this.client.name
  }

  async joinFromInbox(): Promise<void> {
    const welcome = (await this.api.welcomes(this.name, this.#welcomeCursor)).find((w) => w.group_id === this.groupId)
    if (!welcome) throw new Error(`${this.name}: no Welcome for ${this.groupId}`)
    this.#welcomeCursor = welcome.seq
    const info = await this.api.groupInfo(this.groupId)
    if (info.type !== 'GroupInfoResponse') throw new Error(`${this.name}: ${JSON.stringify(info)}`)
    await this.client.joinFromWelcome(unbytes(welcome.welcome), unbytes(info.ratchet_tree))
    this.#joinedEpoch = Number(this.client.epoch)
  }

  /**
   * Processes the log after its cursor in seq order, skipping its own messages (its accepted
   * Commits are merged already) and those of epochs before it joined.
   */
  async sync(): Promise<void> {
    for (const m of await this.api.messages(this.groupId, this.cursor)) {
      this.cursor = m.seq
      if (m.sender_id === this.name || m.epoch < this.#joinedEpoch) continue
      const r = await this.client.receive(unbytes(m.message))
      if (r.kind === 'application') this.received.push(`${m.sender_id}: ${r.text}`)
    }
  }

  async say(text: string): Promise<Answer> {
    return this.api.relay(this.groupId, this.name, await this.client.sendApplication(text))
  }

  commit(bundle: CommitBundle, extras?: CommitExtras): Promise<Answer> {
    return this.api.commit(this.groupId, this.name, bundle, extras)
  }
}
