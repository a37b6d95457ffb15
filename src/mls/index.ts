/**
 * The MLS boundary of the delivery service: the only module that imports ts-mls.
 * Everything here is a pure function of its input bytes (plus a cache of crypto
 * implementations); the DS never holds group secrets (RFC 9750 §5, RFC 9420 §16.1).
 */
export { MlsValidationError, isMlsValidationError, type MlsCheck } from './errors.js'
export {
  supportedCiphersuites,
  isKnownCiphersuite,
  ciphersuiteName,
  parseCiphersuiteList,
  checkCiphersuiteImplementations,
  type CiphersuiteInfo,
  type CiphersuiteStatus,
} from './ciphersuites.js'
export {
  inspectKeyPackage,
  LAST_RESORT_EXTENSION_TYPE,
  type KeyPackagePolicy,
  type KeyPackageInspection,
} from './key-package.js'
export { createKeyPackageInspector, type KeyPackageInspector } from './key-package-pool.js'
export { inspectMessage, type MessageInspection, type ContentType } from './message.js'
export { inspectGroupInfo, type GroupInfoInspection } from './group-info.js'
export { verifyExternalCommit } from './external-commit.js'
export { equalBytes, toHex } from './bytes.js'
