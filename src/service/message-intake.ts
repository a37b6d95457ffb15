import type { ValidationMode } from '../config.js'
import { ServiceError } from '../errors.js'
import { inspectGroupInfo, inspectMessage, isMlsValidationError, type MessageInspection } from '../mls/index.js'
import type { AppendCondition, ContentType, GroupInfoRecord, MessageType } from '../storage/store.js'

/** What the DS learned about a relayed message, and the rule its append must satisfy. */
export interface ClassifiedMessage {
  readonly messageType: MessageType
  readonly contentType: ContentType | null
  readonly epoch: number | null
  readonly condition: AppendCondition
  /** KeyPackageRefs of a Welcome's recipients (RFC 9420 §12.4.3.1). */
  readonly welcomeRefs?: readonly string[]
  /**
   * A Commit by a client joining from the GroupInfo (RFC 9420 §12.4.3.2): its sender need not
   * be a member, and becomes one by it, once DeliveryService has checked it (see externalJoin).
   */
  readonly externalCommit?: boolean
}

/** Declared types that agree with each content type; 'Add' is the original's name for an add proposal or commit. */
const AGREEING_TYPES: Record<ContentType, readonly MessageType[]> = {
  commit: ['Commit', 'Add'],
  proposal: ['Proposal', 'Add'],
  application: ['Application'],
  welcome: ['Welcome'],
}
const DERIVED_TYPES: Record<ContentType, MessageType> = { commit: 'Commit', proposal: 'Proposal', application: 'Application', welcome: 'Welcome' }

export function inspectOrReject(bytes: Uint8Array, field: string): MessageInspection {
  try {
    return inspectMessage(bytes)
  } catch (err) {
    if (!isMlsValidationError(err)) throw err
    throw new ServiceError('invalid_message', `${field}: ${err.message}`, { check: err.check })
  }
}

/**
 * Reads the clear parts of a relayed message (RFC 9420 §6) and decides how it is stored:
 * group messages must name this group and carry its current epoch, and a Commit moves the
 * group to the next epoch (RFC 9750 §5.2.1: one Commit per epoch).
 */
export function classifyMessage(groupId: string, bytes: Uint8Array, declared: MessageType | undefined, mode: ValidationMode): ClassifiedMessage {
  const inspection = inspectOrReject(bytes, 'message')
  switch (inspection.kind) {
    case 'not-mls': {
      if (mode === 'strict') {
        throw new ServiceError('invalid_message', 'message: the bytes are not an MLS message (MLS_VALIDATION=strict)', { check: 'not_mls' })
      }
      if (!declared) throw new ServiceError('bad_request', 'message_type is required for bytes that are not MLS')
      return { messageType: declared, contentType: null, epoch: null, condition: { senderMustBeMember: true } }
    }
    case 'group-message': {
      assertSameGroup(groupId, inspection.groupId)
      const epoch = toEpoch(inspection.epoch)
      return {
        messageType: agreeingType(declared, inspection.contentType),
        contentType: inspection.contentType,
        epoch,
        condition: { senderMustBeMember: !inspection.externalCommit, epoch: { expected: epoch, advance: inspection.contentType === 'commit' } },
        ...(inspection.externalCommit ? { externalCommit: true } : {}),
      }
    }
    case 'welcome':
      return {
        messageType: agreeingType(declared, 'welcome'),
        contentType: 'welcome',
        epoch: null,
        condition: { senderMustBeMember: true },
        welcomeRefs: inspection.newMembers,
      }
    case 'group-info':
      throw new ServiceError('invalid_message', 'message: a GroupInfo is not relayed as a group message; send it with its commit to POST /groups/{group}/commits')
    case 'key-package':
      throw new ServiceError('invalid_message', 'message: a KeyPackage is not a group message; upload it with PUT /key-packages/{client}')
  }
}

/** RFC 9420 §6: a group's id is its UTF-8 bytes; a message for another group is refused. */
export function assertSameGroup(groupId: string, mlsGroupId: Uint8Array): void {
  if (!isUtf8Of(groupId, mlsGroupId)) {
    throw new ServiceError('invalid_message', `the MLS group id of the message does not match group ${groupId}`, { check: 'group_id' })
  }
}

/** Whether `bytes` are the UTF-8 of `text`; an ASCII id (the usual one) is compared in place. */
function isUtf8Of(text: string, bytes: Uint8Array): boolean {
  if (bytes.length < text.length) return false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code >= 0x80) return Buffer.from(text, 'utf8').equals(bytes)
    if (code !== bytes[i]) return false
  }
  return bytes.length === text.length
}

const MAX_EPOCH = BigInt(Number.MAX_SAFE_INTEGER)

export function toEpoch(epoch: bigint): number {
  if (epoch > MAX_EPOCH) throw new ServiceError('invalid_message', `epoch ${epoch} is out of range`)
  return Number(epoch)
}

function agreeingType(declared: MessageType | undefined, contentType: ContentType): MessageType {
  if (declared && !AGREEING_TYPES[contentType].includes(declared)) {
    throw new ServiceError('invalid_message', `message_type ${declared} contradicts the message, which is ${article(contentType)}`, { check: 'message_type' })
  }
  return declared ?? DERIVED_TYPES[contentType]
}

function article(contentType: ContentType): string {
  return contentType === 'application' ? 'an application message' : `a ${contentType}`
}

/** A commit bundle's GroupInfo: this group's, for the epoch the commit starts, signature verified when the tree is there. */
export async function checkGroupInfo(groupId: string, bytes: Uint8Array, ratchetTree: Uint8Array | undefined, expectedEpoch: number, now: number): Promise<GroupInfoRecord> {
  let inspection
  try {
    inspection = await inspectGroupInfo(bytes, ratchetTree)
  } catch (err) {
    if (!isMlsValidationError(err)) throw err
    throw new ServiceError('invalid_message', `group_info: ${err.message}`, { check: err.check })
  }
  assertSameGroup(groupId, inspection.groupId)
  const epoch = toEpoch(inspection.epoch)
  if (epoch !== expectedEpoch) {
    throw new ServiceError('invalid_message', `group_info: it is for epoch ${epoch}, but the commit starts epoch ${expectedEpoch}`, { check: 'group_info_epoch' })
  }
  return { epoch, data: bytes, ratchetTree: ratchetTree ?? null, storedAt: now }
}
