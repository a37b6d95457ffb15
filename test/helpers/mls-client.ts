/**
 * A real MLS client (ts-mls) for end-to-end tests of the delivery service. Everything it
 * sends and returns is an encoded MLSMessage (RFC 9420 §6) as a Uint8Array, exactly what a
 * client would put on the wire; the ratchet tree travels as an encoded `ratchet_tree`
 * (optional<Node> ratchet_tree<V>, §12.4.3.3).
 *
 * Commits apply immediately (ts-mls's createCommit returns the merged new state). If the DS
 * rejects the commit (e.g. 409 stale epoch), call `rollback()` to return to the state
 * before it, then process the winning commit.
 */
import {
  acceptAll, ciphersuites, createApplicationMessage, createCommit, createGroup, createGroupInfoWithExternalPub,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage, defaultCapabilities, emptyPskIndex, encodeMlsMessage, generateKeyPackageWithKey,
  getCiphersuiteFromName, getCiphersuiteImpl, joinGroup, joinGroupExternal, mlsExporter, processMessage,
  type CiphersuiteImpl, type CiphersuiteName, type ClientState, type Credential, type CreateCommitResult,
  type Extension, type KeyPackage, type MLSMessage, type PrivateKeyPackage, type Proposal,
} from 'ts-mls'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'
import { decodeRatchetTree, encodeRatchetTree } from 'ts-mls/ratchetTree.js'
import { createCustomCredential } from 'ts-mls/customCredential.js'

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

export const LAST_RESORT = 0x000a

export interface KeyPackageOptions {
  /** Adds the last_resort KeyPackage extension (draft-ietf-mls-extensions). */
  readonly lastResort?: boolean
  /** Unix seconds; default notBefore = now - 60, notAfter = now + 7 days. */
  readonly lifetime?: { readonly notBefore: number | bigint; readonly notAfter: number | bigint }
  /** 'mls-message' (default) wraps it in an MLSMessage; 'bare' returns the KeyPackage struct. */
  readonly framing?: 'mls-message' | 'bare'
  /** Use a custom credential type (ts-mls cannot decode these: for negative tests). */
  readonly customCredentialType?: number
}

export interface CreatedKeyPackage {
  readonly bytes: Uint8Array
  /** Hex KeyPackageRef (RFC 9420 §5.2). */
  readonly ref: string
}

export interface CommitBundle {
  /** The Commit as an MLSMessage (PrivateMessage unless `publicMessage` was asked). */
  readonly commit: Uint8Array
  /** The Welcome as an MLSMessage, when members were added. */
  readonly welcome?: Uint8Array
  /** A GroupInfo (MLSMessage, with external_pub) for the new epoch. */
  readonly groupInfo: Uint8Array
  /** The new epoch's ratchet tree, encoded. */
  readonly ratchetTree: Uint8Array
  /** The epoch the Commit was sent in (what the DS sees in its header). */
  readonly epoch: bigint
  readonly newEpoch: bigint
}

export interface CommitOptions {
  readonly publicMessage?: boolean
  /** Put the ratchet tree inside the Welcome (ratchet_tree extension). Default false. */
  readonly ratchetTreeExtension?: boolean
  /** Put the ratchet tree inside the returned GroupInfo too. Default false. */
  readonly groupInfoWithRatchetTree?: boolean
}

export type Received =
  | { readonly kind: 'application'; readonly data: Uint8Array; readonly text: string }
  | { readonly kind: 'handshake'; readonly epoch: bigint }

export function suiteName(id: number): CiphersuiteName {
  const entry = Object.entries(ciphersuites).find(([, v]) => v === id)
  if (entry === undefined) throw new Error(`unknown cipher suite ${id}`)
  return entry[0] as CiphersuiteName
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

export function encode(m: MLSMessage): Uint8Array {
  return encodeMlsMessage(m)
}

function decode(bytes: Uint8Array): MLSMessage {
  const r = decodeMlsMessage(bytes, 0)
  if (r === undefined) throw new Error('not an MLSMessage')
  return r[0]
}

export class MlsTestClient {
  readonly name: string
  readonly ciphersuite: number
  readonly cs: CiphersuiteImpl
  private readonly signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array }
  private readonly keyPackages = new Map<string, { pub: KeyPackage; priv: PrivateKeyPackage; lastResort: boolean }>()
  private current: ClientState | undefined
  private previous: ClientState | undefined

  private constructor(name: string, ciphersuite: number, cs: CiphersuiteImpl, keys: { signKey: Uint8Array; publicKey: Uint8Array }) {
    this.name = name
    this.ciphersuite = ciphersuite
    this.cs = cs
    this.signatureKeys = keys
  }

  /** A client with a basic credential whose identity is the UTF-8 of `name`. */
  static async create(name: string, ciphersuite = 1): Promise<MlsTestClient> {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName(suiteName(ciphersuite)))
    return new MlsTestClient(name, ciphersuite, cs, await cs.signature.keygen())
  }

  get state(): ClientState {
    if (this.current === undefined) throw new Error(`${this.name} is not in a group`)
    return this.current
  }

  get inGroup(): boolean {
    return this.current !== undefined
  }

  get epoch(): bigint {
    return this.state.groupContext.epoch
  }

  get groupId(): string {
    return fromUtf8.decode(this.state.groupContext.groupId)
  }

  async createKeyPackage(opts: KeyPackageOptions = {}): Promise<CreatedKeyPackage> {
    const now = BigInt(Math.floor(Date.now() / 1000))
    const lifetime = opts.lifetime === undefined
      ? { notBefore: now - 60n, notAfter: now + 7n * 86400n }
      : { notBefore: BigInt(opts.lifetime.notBefore), notAfter: BigInt(opts.lifetime.notAfter) }
    const caps = defaultCapabilities()
    const extensions: Extension[] = []
    if (opts.lastResort === true) {
      extensions.push({ extensionType: LAST_RESORT, extensionData: new Uint8Array() })
      caps.extensions = [...caps.extensions, LAST_RESORT]
    }
    let credential: Credential = { credentialType: 'basic', identity: utf8.encode(this.name) }
    if (opts.customCredentialType !== undefined) {
      credential = createCustomCredential(opts.customCredentialType, utf8.encode(this.name))
    }
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey(
      credential, caps, lifetime, extensions, this.signatureKeys, this.cs)
    const ref = hex(await makeKeyPackageRef(publicPackage, this.cs.hash))
    this.keyPackages.set(ref, { pub: publicPackage, priv: privatePackage, lastResort: opts.lastResort === true })
    const bytes = opts.framing === 'bare'
      ? encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage }).subarray(4)
      : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage })
    return { bytes, ref }
  }

  /** Creates a one-member group whose MLS group_id is the UTF-8 of `groupId`. */
  async createGroup(groupId: string): Promise<void> {
    const { pub, priv } = await this.freshKeyPackage()
    this.current = await createGroup(utf8.encode(groupId), pub, priv, [], this.cs)
  }

  /** Commits Add proposals for the given (claimed) KeyPackages, bare or MLSMessage. */
  async addMembers(keyPackages: readonly Uint8Array[], opts: CommitOptions = {}): Promise<CommitBundle> {
    const proposals: Proposal[] = keyPackages.map((bytes) => ({
      proposalType: 'add',
      add: { keyPackage: decodeAnyKeyPackage(bytes) },
    }))
    return this.commit(proposals, opts)
  }

  /** Commits the removal of the member whose identity is `name` (or a leaf index). */
  async removeMember(member: string | number, opts: CommitOptions = {}): Promise<CommitBundle> {
    const removed = typeof member === 'number' ? member : this.leafIndexOf(member)
    return this.commit([{ proposalType: 'remove', remove: { removed } }], opts)
  }

  /** An empty (path-only) Commit: refreshes this member's keys (RFC 9420 §12.4). */
  async selfUpdate(opts: CommitOptions = {}): Promise<CommitBundle> {
    return this.commit([], opts)
  }

  /** Restores the state before the last Commit this client created (the DS rejected it). */
  rollback(): void {
    if (this.previous === undefined) throw new Error('nothing to roll back')
    this.current = this.previous
    this.previous = undefined
  }

  /** Joins from a Welcome (MLSMessage bytes) with one of this client's KeyPackages. */
  async joinFromWelcome(welcomeBytes: Uint8Array, ratchetTree?: Uint8Array): Promise<void> {
    const m = decode(welcomeBytes)
    if (m.wireformat !== 'mls_welcome') throw new Error(`expected a Welcome, got ${m.wireformat}`)
    const refs = new Set(m.welcome.secrets.map((s) => hex(s.newMember)))
    const mine = [...this.keyPackages].find(([ref]) => refs.has(ref))
    if (mine === undefined) throw new Error(`${this.name}: the Welcome is not for any of my KeyPackages`)
    const [ref, { pub, priv, lastResort }] = mine
    const tree = ratchetTree === undefined ? undefined : decodeRatchetTree(ratchetTree, 0)?.[0]
    this.current = await joinGroup(m.welcome, pub, priv, emptyPskIndex, this.cs, tree)
    this.previous = undefined
    if (!lastResort) this.keyPackages.delete(ref)
  }

  /**
   * Joins from a GroupInfo (MLSMessage bytes, with external_pub) and its ratchet tree by an
   * external commit (RFC 9420 §12.4.3.2); `resync` also removes this client's old leaf. The
   * bundle's GroupInfo is for the epoch the commit starts, for whoever joins next.
   */
  async joinExternal(groupInfoBytes: Uint8Array, ratchetTree: Uint8Array, resync = false): Promise<CommitBundle> {
    const m = decode(groupInfoBytes)
    if (m.wireformat !== 'mls_group_info') throw new Error(`expected a GroupInfo, got ${m.wireformat}`)
    const { pub, priv } = await this.freshKeyPackage()
    const tree = decodeRatchetTree(ratchetTree, 0)?.[0]
    const r = await joinGroupExternal(m.groupInfo, pub, priv, resync, this.cs, tree)
    this.previous = this.current
    this.current = r.newState
    const gi = await createGroupInfoWithExternalPub(r.newState, [], this.cs)
    return {
      commit: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: r.publicMessage }),
      groupInfo: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: gi }),
      ratchetTree: encodeRatchetTree(r.newState.ratchetTree),
      epoch: m.groupInfo.groupContext.epoch,
      newEpoch: r.newState.groupContext.epoch,
    }
  }

  /** Forgets its group state (a device that lost its storage). */
  forgetGroup(): void {
    this.current = undefined
    this.previous = undefined
  }

  /** An application message (PrivateMessage) as MLSMessage bytes. */
  async sendApplication(data: string | Uint8Array): Promise<Uint8Array> {
    const bytes = typeof data === 'string' ? utf8.encode(data) : data
    const r = await createApplicationMessage(this.state, bytes, this.cs)
    this.current = r.newState
    return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: r.privateMessage })
  }

  /** Processes a received PrivateMessage / PublicMessage (application, proposal or commit). */
  async receive(bytes: Uint8Array): Promise<Received> {
    const m = decode(bytes)
    if (m.wireformat !== 'mls_private_message' && m.wireformat !== 'mls_public_message') {
      throw new Error(`cannot process a ${m.wireformat} here`)
    }
    const r = await processMessage(m, this.state, emptyPskIndex, acceptAll, this.cs)
    this.current = r.newState
    this.previous = undefined
    if (r.kind === 'applicationMessage') {
      return { kind: 'application', data: r.message, text: fromUtf8.decode(r.message) }
    }
    if (r.actionTaken !== 'accept') throw new Error('message was rejected')
    return { kind: 'handshake', epoch: r.newState.groupContext.epoch }
  }

  /** RFC 9420 §8.7: equal for all members in the same epoch. */
  epochAuthenticator(): Uint8Array {
    return this.state.keySchedule.epochAuthenticator
  }

  /** RFC 9420 §8.5 MLS-Exporter(label, context, length). */
  exportSecret(label = 'test', context: Uint8Array = new Uint8Array(), length = 32): Promise<Uint8Array> {
    return mlsExporter(this.state.keySchedule.exporterSecret, label, context, length, this.cs)
  }

  /** Identities of the current members, in leaf order. */
  members(): string[] {
    return this.state.ratchetTree.flatMap((n) =>
      n?.nodeType === 'leaf' && n.leaf.credential.credentialType === 'basic'
        ? [fromUtf8.decode(n.leaf.credential.identity)] : [])
  }

  leafIndexOf(name: string): number {
    const i = this.state.ratchetTree.findIndex((n) => n?.nodeType === 'leaf'
      && n.leaf.credential.credentialType === 'basic' && fromUtf8.decode(n.leaf.credential.identity) === name)
    if (i < 0) throw new Error(`${name} is not a member`)
    return i / 2
  }

  private async freshKeyPackage(): Promise<{ pub: KeyPackage; priv: PrivateKeyPackage }> {
    const { ref } = await this.createKeyPackage()
    const kp = this.keyPackages.get(ref)
    if (kp === undefined) throw new Error('unreachable')
    this.keyPackages.delete(ref)
    return kp
  }

  private async commit(extraProposals: Proposal[], opts: CommitOptions): Promise<CommitBundle> {
    const before = this.state
    const r: CreateCommitResult = await createCommit({ state: before, cipherSuite: this.cs }, {
      extraProposals,
      wireAsPublicMessage: opts.publicMessage === true,
      ratchetTreeExtension: opts.ratchetTreeExtension === true,
    })
    this.previous = before
    this.current = r.newState
    const gi = opts.groupInfoWithRatchetTree === true
      ? await createGroupInfoWithExternalPubAndRatchetTree(r.newState, [], this.cs)
      : await createGroupInfoWithExternalPub(r.newState, [], this.cs)
    return {
      commit: encodeMlsMessage(r.commit),
      welcome: r.welcome === undefined
        ? undefined
        : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: r.welcome }),
      groupInfo: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: gi }),
      ratchetTree: encodeRatchetTree(r.newState.ratchetTree),
      epoch: before.groupContext.epoch,
      newEpoch: r.newState.groupContext.epoch,
    }
  }
}

/** Decodes a KeyPackage given as an MLSMessage or bare. */
export function decodeAnyKeyPackage(bytes: Uint8Array): KeyPackage {
  const framed = (() => { try { return decodeMlsMessage(bytes, 0) } catch { return undefined } })()
  if (framed !== undefined && framed[0].wireformat === 'mls_key_package' && framed[1] === bytes.length) {
    return framed[0].keyPackage
  }
  const header = new Uint8Array([0, 1, 0, 5])
  const wrapped = new Uint8Array(header.length + bytes.length)
  wrapped.set(header)
  wrapped.set(bytes, header.length)
  const bare = decodeMlsMessage(wrapped, 0)
  if (bare === undefined || bare[0].wireformat !== 'mls_key_package') throw new Error('not a KeyPackage')
  return bare[0].keyPackage
}
