/**
 * Classifies relayed MLSMessages (RFC 9420 §6) from their clear fields only. Runs on every
 * message, so PrivateMessage (the common case) is read by hand without ts-mls and without
 * copying: `groupId` is a view into the input (copy it if you keep it past the request).
 *
 * Rules: bytes whose first four bytes are not mls10 + a known wire format are `not-mls`.
 * Bytes with a valid MLSMessage header that do not decode throw MlsValidationError
 * 'malformed'; a complete message followed by extra bytes throws 'trailing_bytes'. A bare
 * (unframed) KeyPackage or GroupInfo is not an MLSMessage and is reported as malformed or
 * not-mls depending on its first bytes: use inspectKeyPackage / inspectGroupInfo for those.
 */
import { decodeMlsMessage } from 'ts-mls'
import { readU64, readVector, toHex, view } from './bytes.js'
import { ciphersuiteIdFromDecoded } from './ciphersuites.js'
import { MLS10, WIRE_FORMAT, WIRE_FORMAT_NAMES, readHeader, tryDecode } from './decode.js'
import { MlsValidationError } from './errors.js'

export type ContentType = 'application' | 'proposal' | 'commit'

export type MessageInspection =
  | { readonly kind: 'not-mls' }
  | {
    readonly kind: 'group-message'
    readonly wireFormat: 'public' | 'private'
    /** View into the input buffer. */
    readonly groupId: Uint8Array
    readonly epoch: bigint
    readonly contentType: ContentType
    /**
     * A Commit by a client joining from a GroupInfo (sender new_member_commit, RFC 9420
     * §12.4.3.2), always a PublicMessage; a PrivateMessage's sender is encrypted (and a member).
     */
    readonly externalCommit: boolean
  }
  | {
    readonly kind: 'welcome'
    /** Numeric id; may be one this service does not know (check with isKnownCiphersuite). */
    readonly ciphersuite: number
    /** Hex KeyPackageRefs of the recipients: `secrets[i].new_member` (§12.4.3.1). */
    readonly newMembers: string[]
  }
  | {
    readonly kind: 'group-info'
    readonly groupId: Uint8Array
    readonly epoch: bigint
    readonly ciphersuite: number
  }
  | { readonly kind: 'key-package' }

const CONTENT_TYPES: readonly (ContentType | undefined)[] = [undefined, 'application', 'proposal', 'commit']

export function inspectMessage(bytes: Uint8Array): MessageInspection {
  const header = readHeader(bytes)
  if (header === undefined || header.version !== MLS10) return { kind: 'not-mls' }
  const wf = header.wireFormat
  if (wf === WIRE_FORMAT.private) return inspectPrivateMessage(bytes)
  if (wf < WIRE_FORMAT.public || wf > WIRE_FORMAT.keyPackage) return { kind: 'not-mls' }

  const name = WIRE_FORMAT_NAMES[wf] ?? 'message'
  const decoded = tryDecode(decodeMlsMessage, bytes)
  if (!decoded.ok) throw new MlsValidationError('malformed', `MLS ${name} does not decode (truncated or corrupt)`)
  if (decoded.consumed !== bytes.length) {
    throw new MlsValidationError('trailing_bytes', `MLS ${name} is followed by trailing bytes`)
  }
  const m = decoded.value
  switch (m.wireformat) {
    case 'mls_public_message': {
      const c = m.publicMessage.content
      const externalCommit = c.sender.senderType === 'new_member_commit' && c.contentType === 'commit'
      return { kind: 'group-message', wireFormat: 'public', groupId: c.groupId, epoch: c.epoch, contentType: c.contentType, externalCommit }
    }
    case 'mls_welcome':
      return {
        kind: 'welcome',
        ciphersuite: ciphersuiteIdFromDecoded(m.welcome.cipherSuite),
        newMembers: m.welcome.secrets.map((s) => toHex(s.newMember)),
      }
    case 'mls_group_info': {
      const gc = m.groupInfo.groupContext
      return { kind: 'group-info', groupId: gc.groupId, epoch: gc.epoch, ciphersuite: ciphersuiteIdFromDecoded(gc.cipherSuite) }
    }
    case 'mls_key_package':
      return { kind: 'key-package' }
    default:
      throw new MlsValidationError('malformed', 'MLS message has an unexpected wire format')
  }
}

/**
 * §6.3.1 PrivateMessage: opaque group_id<V>; uint64 epoch; ContentType content_type;
 * opaque authenticated_data<V>; opaque encrypted_sender_data<V>; opaque ciphertext<V>.
 */
function inspectPrivateMessage(bytes: Uint8Array): MessageInspection {
  const malformed = (): never => {
    throw new MlsValidationError('malformed', 'MLS PrivateMessage does not decode (truncated or corrupt)')
  }
  const groupId = readVector(bytes, 4) ?? malformed()
  if (groupId.end + 9 > bytes.length) malformed()
  const epoch = readU64(bytes, groupId.end)
  const contentType = CONTENT_TYPES[bytes[groupId.end + 8] as number] ?? malformed()
  let pos = groupId.end + 9
  for (let i = 0; i < 3; i++) pos = (readVector(bytes, pos) ?? malformed()).end
  if (pos !== bytes.length) {
    throw new MlsValidationError('trailing_bytes', 'MLS PrivateMessage is followed by trailing bytes')
  }
  return {
    kind: 'group-message',
    wireFormat: 'private',
    groupId: view(bytes, groupId.start, groupId.end - groupId.start),
    epoch,
    contentType,
    externalCommit: false,
  }
}
