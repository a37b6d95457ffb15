/**
 * GroupInfo inspection for the copies a DS keeps for joiners and external commits
 * (RFC 9420 §12.4.3, RFC 9750 §7). Accepts a bare GroupInfo or one wrapped in an
 * MLSMessage. When a ratchet tree is available (given separately, or in the GroupInfo's
 * ratchet_tree extension, §12.4.3.3) the tree must match the signed tree hash and the
 * GroupInfo signature must verify with the signer's leaf key; otherwise the signature is
 * left unverified and `signatureVerified` is false. Invalid input throws MlsValidationError.
 */
import { decodeMlsMessage, type GroupInfo, type RatchetTree } from 'ts-mls'
import { decodeGroupInfo, verifyGroupInfoSignature } from 'ts-mls/groupInfo.js'
import { decodeRatchetTree } from 'ts-mls/ratchetTree.js'
import { treeHashRoot } from 'ts-mls/treeHash.js'
import { equalBytes } from './bytes.js'
import { ciphersuiteIdFromDecoded, isKnownCiphersuite, loadCiphersuiteImpl } from './ciphersuites.js'
import { MLS10, WIRE_FORMAT, WIRE_FORMAT_NAMES, isSurelyFramed, readHeader, tryDecode } from './decode.js'
import { MlsValidationError } from './errors.js'

export interface GroupInfoInspection {
  /** View into the input buffer. */
  readonly groupId: Uint8Array
  readonly epoch: bigint
  readonly ciphersuite: number
  readonly framing: 'bare' | 'mls-message'
  /** Leaf index of the member that signed it. */
  readonly signer: number
  readonly signatureVerified: boolean
  /** Where the tree used for verification came from, if any. */
  readonly ratchetTreeSource: 'argument' | 'extension' | null
}

export async function inspectGroupInfo(bytes: Uint8Array, ratchetTree?: Uint8Array): Promise<GroupInfoInspection> {
  const { groupInfo: gi, framing } = locateGroupInfo(bytes)
  const gc = gi.groupContext
  const ciphersuite = ciphersuiteIdFromDecoded(gc.cipherSuite)
  if (!isKnownCiphersuite(ciphersuite)) {
    throw new MlsValidationError('ciphersuite_unknown', `GroupInfo cipher suite ${ciphersuite} is not supported`)
  }
  const base = { groupId: gc.groupId, epoch: gc.epoch, ciphersuite, framing, signer: gi.signer }

  let tree: RatchetTree | undefined
  let source: 'argument' | 'extension' | null = null
  if (ratchetTree !== undefined && ratchetTree.length > 0) {
    const decoded = tryDecode(decodeRatchetTree, ratchetTree)
    if (!decoded.ok || decoded.consumed !== ratchetTree.length) {
      throw new MlsValidationError('ratchet_tree', 'ratchet tree does not decode')
    }
    tree = decoded.value
    source = 'argument'
  } else {
    // §12.4.3.3 ratchet_tree extension (type 2, which ts-mls decodes as 'ratchet_tree').
    const ext = gi.extensions.find((e) => e.extensionType === 'ratchet_tree')
    if (ext !== undefined) {
      const decoded = tryDecode(decodeRatchetTree, ext.extensionData)
      if (!decoded.ok || decoded.consumed !== ext.extensionData.length) {
        throw new MlsValidationError('ratchet_tree', 'GroupInfo ratchet_tree extension does not decode')
      }
      tree = decoded.value
      source = 'extension'
    }
  }
  if (tree === undefined) return { ...base, signatureVerified: false, ratchetTreeSource: null }

  const impl = await loadCiphersuiteImpl(ciphersuite).catch(() => {
    throw new MlsValidationError('ciphersuite_unavailable', `GroupInfo cipher suite ${ciphersuite} is not available`)
  })
  // §12.4.3.1 (joining): the tree's root hash must equal GroupContext.tree_hash.
  const hash = await treeHashRoot(tree, impl.hash).catch(() => undefined)
  if (hash === undefined || !equalBytes(hash, gc.treeHash)) {
    throw new MlsValidationError('ratchet_tree', 'ratchet tree does not match the GroupInfo tree hash')
  }
  // §12.4.3: signed by the leaf at index `signer` (node index 2 * signer, §4.1.1 / Appendix C).
  const node = tree[2 * gi.signer]
  if (node === undefined || node.nodeType !== 'leaf') {
    throw new MlsValidationError('ratchet_tree', `GroupInfo signer ${gi.signer} is not a leaf of the ratchet tree`)
  }
  const ok = await verifyGroupInfoSignature(gi, node.leaf.signaturePublicKey, impl.signature).catch(() => false)
  if (!ok) throw new MlsValidationError('group_info_signature', 'GroupInfo signature does not verify')
  return { ...base, signatureVerified: true, ratchetTreeSource: source }
}

/** Bare GroupInfo starts with its GroupContext (0001 + cipher suite); framed with 0001 0004. */
export function locateGroupInfo(bytes: Uint8Array): { groupInfo: GroupInfo; framing: 'bare' | 'mls-message' } {
  const header = readHeader(bytes)
  if (header === undefined || header.version !== MLS10) {
    throw new MlsValidationError('malformed', 'not an MLS GroupInfo')
  }
  const framed = header.wireFormat === WIRE_FORMAT.groupInfo ? tryDecode(decodeMlsMessage, bytes) : undefined
  if (framed?.ok === true && framed.consumed === bytes.length && framed.value.wireformat === 'mls_group_info') {
    return { groupInfo: framed.value.groupInfo, framing: 'mls-message' }
  }
  const bare = isSurelyFramed(bytes, WIRE_FORMAT.groupInfo) ? undefined : tryDecode(decodeGroupInfo, bytes)
  if (bare?.ok === true && bare.consumed === bytes.length) return { groupInfo: bare.value, framing: 'bare' }
  if (framed?.ok === true || bare?.ok === true) {
    throw new MlsValidationError('trailing_bytes', 'GroupInfo is followed by trailing bytes')
  }
  if (header.wireFormat >= WIRE_FORMAT.public && header.wireFormat <= WIRE_FORMAT.keyPackage) {
    const other = tryDecode(decodeMlsMessage, bytes)
    if (other.ok) {
      throw new MlsValidationError('not_a_group_info',
        `expected a GroupInfo, got an MLS ${WIRE_FORMAT_NAMES[header.wireFormat]}`)
    }
  }
  throw new MlsValidationError('malformed', 'GroupInfo does not decode (truncated or corrupt)')
}
