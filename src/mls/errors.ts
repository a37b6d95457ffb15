/**
 * Errors raised by the MLS inspection functions. Bytes that are not MLS at all are not an
 * error (the inspectors answer `{ kind: 'not-mls' }`); bytes that ARE MLS but break a rule
 * raise `MlsValidationError`, whose `check` names the rule and whose `message` is safe to
 * show to the client.
 */

export type MlsCheck =
  /** A complete structure decoded, but bytes are left over (RFC 9420 §2.1). */
  | 'trailing_bytes'
  /** The MLS header is present but the structure does not decode (truncated or corrupt). */
  | 'malformed'
  /** Lengths were not minimally encoded, so the bytes differ from the canonical encoding. */
  | 'non_canonical'
  /** ProtocolVersion is not mls10 (RFC 9420 §6). */
  | 'version'
  /** The cipher suite id is not one this implementation knows (RFC 9420 §17.1). */
  | 'ciphersuite_unknown'
  /** The cipher suite is known but not in the configured allow-list. */
  | 'ciphersuite_not_allowed'
  /** The cipher suite is known but its crypto implementation could not be loaded. */
  | 'ciphersuite_unavailable'
  /** KeyPackage signature over KeyPackageTBS (RFC 9420 §10.1). */
  | 'signature'
  /** LeafNode signature over LeafNodeTBS (RFC 9420 §7.2). */
  | 'leaf_signature'
  /** GroupInfo signature over GroupInfoTBS (RFC 9420 §12.4.3). */
  | 'group_info_signature'
  /** The ratchet tree does not decode, does not match the tree hash, or lacks the signer. */
  | 'ratchet_tree'
  /** init_key equals the leaf encryption_key (RFC 9420 §10.1). */
  | 'init_key_reuse'
  /** Lifetime checks (RFC 9420 §7.2): notAfter passed, notBefore in the future, too long. */
  | 'expired'
  | 'not_yet_valid'
  | 'lifetime_too_long'
  /** The credential type cannot be processed (e.g. a custom credential type). */
  | 'credential'
  /** A valid MLSMessage of another wire format where a KeyPackage was expected. */
  | 'not_a_key_package'
  /** A valid MLSMessage of another wire format where a GroupInfo was expected. */
  | 'not_a_group_info'
  /**
   * An external commit (RFC 9420 §12.4.3.2) that cannot be taken: no UpdatePath, or no GroupInfo
   * of its epoch to check it against.
   */
  | 'external_commit'
  /** The signature of a PublicMessage over FramedContentTBS (RFC 9420 §6.1) does not verify. */
  | 'message_signature'

export class MlsValidationError extends Error {
  readonly check: MlsCheck

  constructor(check: MlsCheck, message: string) {
    super(message)
    this.name = 'MlsValidationError'
    this.check = check
  }
}

export function isMlsValidationError(err: unknown): err is MlsValidationError {
  return err instanceof MlsValidationError
}
