/**
 * External commits (RFC 9420 §12.4.3.2): a client that is not in the group joins it from a
 * GroupInfo, with a Commit whose sender is `new_member_commit`, sent as a PublicMessage and
 * signed with the key of the leaf in its own UpdatePath. The DS cannot check the commit's
 * secrets (members do, through its confirmation tag), but it can check the signature over
 * FramedContentTBS, which covers the GroupContext of the epoch (§6.1): only someone who holds
 * that epoch's GroupInfo (a member, or a client a member gave it to) can make one that verifies.
 * So a client without it cannot end a group's epoch with bytes that merely look like a commit.
 */
import { decodeMlsMessage } from 'ts-mls'
import { verifyFramedContentSignature } from 'ts-mls/framedContent.js'
import { ciphersuiteIdFromDecoded, loadCiphersuiteImpl } from './ciphersuites.js'
import { tryDecode } from './decode.js'
import { MlsValidationError } from './errors.js'
import { locateGroupInfo } from './group-info.js'

/**
 * Checks an external commit (MLSMessage bytes, already inspected as one) against the GroupInfo
 * the DS keeps for the commit's epoch (MLSMessage or bare); throws MlsValidationError.
 */
export async function verifyExternalCommit(commitBytes: Uint8Array, groupInfoBytes: Uint8Array): Promise<void> {
  const decoded = tryDecode(decodeMlsMessage, commitBytes)
  if (!decoded.ok || decoded.value.wireformat !== 'mls_public_message') {
    throw new MlsValidationError('malformed', 'an external commit must be an MLS PublicMessage')
  }
  const { content, auth } = decoded.value.publicMessage
  if (content.contentType !== 'commit' || content.sender.senderType !== 'new_member_commit') {
    throw new MlsValidationError('external_commit', 'not an external commit')
  }
  // §12.4.3.2: an external commit always has a path; its leaf is the joiner's, with its signature key.
  const leaf = content.commit.path?.leafNode
  if (leaf === undefined) throw new MlsValidationError('external_commit', 'an external commit must carry an UpdatePath (RFC 9420 §12.4.3.2)')

  // Checked when it was stored (its signature too, when a tree came with it).
  const context = locateGroupInfo(groupInfoBytes).groupInfo.groupContext
  if (context.epoch !== content.epoch) {
    throw new MlsValidationError('external_commit', `the GroupInfo kept is for epoch ${context.epoch}, the commit for epoch ${content.epoch}`)
  }
  const impl = await loadCiphersuiteImpl(ciphersuiteIdFromDecoded(context.cipherSuite)).catch(() => {
    throw new MlsValidationError('ciphersuite_unavailable', 'the group\'s cipher suite is not available')
  })
  const ok = await verifyFramedContentSignature(leaf.signaturePublicKey, 'mls_public_message', content, auth, context, impl.signature).catch(() => false)
  if (!ok) throw new MlsValidationError('message_signature', 'the external commit\'s signature does not verify against the group\'s current GroupContext')
}
