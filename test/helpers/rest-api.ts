/**
 * A small REST client for the delivery service, over real HTTP (`fetch`), and a group member
 * that reads the DS log in seq order: what an MLS client does against the REST API.
 */
import type { CommitBundle, MlsTestClient } from './mls-client.js'

// Replies are JSON of several shapes; tests assert on their fields.
export type Body = Record<string, any>

export interface Reply {
  readonly status: number
  readonly body: Body
  readonly headers: Headers
}

export const b64 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
/** A path segment: ids may hold any character (the MLS group id is the UTF-8 of the group id). */
export const at = (id: string): string => encodeURIComponent(id)
export const unb64 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64'))

export interface CommitExtras {
  readonly welcome_recipients?: readonly string[]
  /** Leave out fields of the bundle (e.g. to send a Commit without its GroupInfo). */
  readonly omit?: readonly ('welcome' | 'group_info' | 'ratchet_tree')[]
  /** Replace the GroupInfo or the ratchet tree (e.g. with a tampered one). */
  readonly group_info?: Uint8Array
  readonly ratchet_tree?: Uint8Array
}

export class RestApi {
  readonly base: string
  /** Sent as `Authorization: Bearer` on every call (a service with AUTH=jwt). */
  readonly #token: string | undefined

  constructor(port: number, token?: string) {
    this.base = `http://127.0.0.1:${port}`
    this.#token = token
  }

  /** The same service, as the client `token` speaks for. */
  as(token: string): RestApi {
    return new RestApi(Number(new URL(this.base).port), token)
  }

  /** `path` is sent as given: build it with `at` so ids are percent-encoded. */
  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
    const init: RequestInit = { method, headers: { ...this.#authorization(), ...headers } }
    if (body instanceof Uint8Array) {
      init.body = body
    } else if (body !== undefined) {
      init.body = JSON.stringify(body)
      ;(init.headers as Record<string, string>)['content-type'] = 'application/json'
    }
    const res = await fetch(`${this.base}${path}`, init)
    const text = await res.text()
    const type = res.headers.get('content-type') ?? ''
    return { status: res.status, body: type.includes('json') && text ? JSON.parse(text) as Body : {}, headers: res.headers }
  }

  putKeyPackages(client: string, packages: readonly Uint8Array[]): Promise<Reply> {
    return this.call('PUT', `/key-packages/${at(client)}`, { key_packages: packages.map(b64) })
  }

  claim(client: string, ciphersuite?: number): Promise<Reply> {
    return this.call('GET', `/key-packages/${at(client)}${ciphersuite === undefined ? '' : `?ciphersuite=${ciphersuite}`}`)
  }

  /** Claims one KeyPackage and returns its bytes; fails the test unless the DS had one. */
  async claimBytes(client: string, ciphersuite?: number): Promise<Uint8Array> {
    const reply = await this.claim(client, ciphersuite)
    if (reply.status !== 200) throw new Error(`claim ${client}: ${reply.status} ${JSON.stringify(reply.body)}`)
    return unb64(reply.body.key_package as string)
  }

  async count(client: string): Promise<Body> {
    return (await this.call('GET', `/key-packages/${at(client)}/count`)).body
  }

  createGroup(groupId: string, creatorId: string, epoch?: number): Promise<Reply> {
    return this.call('POST', '/groups', { group_id: groupId, creator_id: creatorId, ...(epoch === undefined ? {} : { epoch }) })
  }

  send(group: string, sender: string, message: Uint8Array, messageType?: string): Promise<Reply> {
    return this.call('POST', `/groups/${at(group)}/messages`, {
      sender_id: sender,
      message: b64(message),
      ...(messageType === undefined ? {} : { message_type: messageType }),
    })
  }

  commit(group: string, sender: string, bundle: CommitBundle, extras: CommitExtras = {}): Promise<Reply> {
    const omit = new Set(extras.omit ?? [])
    const body: Body = { sender_id: sender, commit: b64(bundle.commit) }
    if (bundle.welcome && !omit.has('welcome')) body.welcome = b64(bundle.welcome)
    if (!omit.has('group_info')) body.group_info = b64(extras.group_info ?? bundle.groupInfo)
    if (!omit.has('ratchet_tree') && !omit.has('group_info')) body.ratchet_tree = b64(extras.ratchet_tree ?? bundle.ratchetTree)
    if (extras.welcome_recipients) body.welcome_recipients = extras.welcome_recipients
    return this.call('POST', `/groups/${at(group)}/commits`, body)
  }

  async messages(group: string, after = 0): Promise<Body[]> {
    const reply = await this.call('GET', `/groups/${at(group)}/messages?after=${after}&limit=1000`)
    if (reply.status !== 200) throw new Error(`read ${group}: ${reply.status} ${JSON.stringify(reply.body)}`)
    return reply.body.messages as Body[]
  }

  async welcomes(client: string, after = 0): Promise<Body[]> {
    return (await this.call('GET', `/clients/${at(client)}/welcomes?after=${after}`)).body.welcomes as Body[]
  }

  groupInfo(group: string): Promise<Reply> {
    return this.call('GET', `/groups/${at(group)}/group-info`)
  }

  async groupInfoRaw(group: string): Promise<{ status: number; type: string | null; bytes: Uint8Array }> {
    const res = await fetch(`${this.base}/groups/${at(group)}/group-info`, { headers: { ...this.#authorization(), accept: 'message/mls' } })
    return { status: res.status, type: res.headers.get('content-type'), bytes: new Uint8Array(await res.arrayBuffer()) }
  }

  async group(group: string): Promise<Body> {
    return (await this.call('GET', `/groups/${at(group)}`)).body
  }

  #authorization(): Record<string, string> {
    return this.#token === undefined ? {} : { authorization: `Bearer ${this.#token}` }
  }
}

/**
 * A member of one group that learns everything from the DS: Welcomes from its inbox, the
 * ratchet tree from the stored GroupInfo, and messages from the group log in seq order.
 */
export class RestMember {
  readonly client: MlsTestClient
  readonly api: RestApi
  readonly groupId: string
  /** The last seq of the group log this member has read. */
  cursor = 0
  /** The epoch this member joined at: earlier log entries are not for it. */
  #joinedEpoch = 0
  /** Application messages decrypted so far, as `sender: text`. */
  readonly received: string[] = []
  #welcomeCursor = 0

  constructor(client: MlsTestClient, api: RestApi, groupId: string) {
    this.client = client
    this.api = api
    this.groupId = groupId
  }

  get name(): string {
    return this.client.name
  }

  /** Reads its next Welcome from the DS and joins with the ratchet tree the DS keeps. */
  async joinFromInbox(): Promise<void> {
    const welcomes = await this.api.welcomes(this.name, this.#welcomeCursor)
    const welcome = welcomes.find((w) => w.group_id === this.groupId)
    if (!welcome) throw new Error(`${this.name}: no Welcome for ${this.groupId}`)
    this.#welcomeCursor = welcome.seq as number
    const info = await this.api.groupInfo(this.groupId)
    await this.client.joinFromWelcome(unb64(welcome.welcome as string), unb64(info.body.ratchet_tree as string))
    this.#joinedEpoch = Number(this.client.epoch)
  }

  /**
   * Processes the log after its cursor in seq order. Skips its own messages (its accepted
   * Commits are already merged; a sender cannot decrypt its own application messages) and,
   * by the epoch the DS stored with each, those sent before the epoch it joined in.
   */
  async sync(): Promise<void> {
    for (const m of await this.api.messages(this.groupId, this.cursor)) {
      this.cursor = m.seq as number
      if (m.sender_id === this.name || (m.epoch as number) < this.#joinedEpoch) continue
      const r = await this.client.receive(unb64(m.message as string))
      if (r.kind === 'application') this.received.push(`${m.sender_id as string}: ${r.text}`)
    }
  }

  async say(text: string): Promise<Reply> {
    return this.api.send(this.groupId, this.name, await this.client.sendApplication(text))
  }

  async commit(bundle: CommitBundle, extras?: CommitExtras): Promise<Reply> {
    return this.api.commit(this.groupId, this.name, bundle, extras)
  }
}
