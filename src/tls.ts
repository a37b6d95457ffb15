import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext } from 'node:tls'
import type { Logger } from 'pino'

/** What both doors' TLS servers are given: the PEM certificate chain and its private key. */
export interface TlsCredentials {
  readonly cert: string
  readonly key: string
}

/** The credentials as read, with the leaf certificate they serve. */
export interface LoadedTls extends TlsCredentials {
  readonly certificate: X509Certificate
}

/** A connection that has not finished its TLS handshake by then is dropped (Node's default is 120 s). */
export const TLS_HANDSHAKE_TIMEOUT_MS = 30_000

/** TLS_CERT_FILE or TLS_KEY_FILE cannot be used: says which and why, never the key itself. */
export class TlsError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'TlsError'
  }
}

/**
 * Reads TLS_CERT_FILE and TLS_KEY_FILE and checks them as a server would use them: the first
 * certificate of the chain parses, the key parses (an encrypted key is refused: the service has
 * no passphrase to give it), the key is that certificate's, and OpenSSL takes the whole chain.
 */
export async function readTlsCredentials(certFile: string, keyFile: string): Promise<LoadedTls> {
  const [cert, key] = await Promise.all([readPem(certFile, 'TLS_CERT_FILE'), readPem(keyFile, 'TLS_KEY_FILE')])
  let certificate: X509Certificate
  try {
    certificate = new X509Certificate(cert)
  } catch {
    throw new TlsError(`TLS_CERT_FILE ${certFile} holds no PEM certificate`)
  }
  let privateKey
  try {
    privateKey = createPrivateKey(key)
  } catch {
    throw new TlsError(`TLS_KEY_FILE ${keyFile} holds no unencrypted PEM private key`)
  }
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new TlsError(`TLS_KEY_FILE ${keyFile} is not the private key of the certificate in TLS_CERT_FILE ${certFile}`)
  }
  // What else a TLS server refuses: a broken certificate later in the chain, a key too weak for OpenSSL's level.
  try {
    createSecureContext({ cert, key })
  } catch (err) {
    throw new TlsError(`TLS_CERT_FILE ${certFile} and TLS_KEY_FILE ${keyFile} cannot serve TLS: ${(err as Error).message}`)
  }
  return { cert, key, certificate }
}

async function readPem(file: string, setting: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new TlsError(`cannot read ${setting} ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code ?? (err as Error).message}`)
  }
}

/** Logs which certificate is served and until when; a certificate out of its validity is a warning. */
export function logCertificate(log: Pick<Logger, 'info' | 'warn'>, certificate: X509Certificate, message: string, now = Date.now()): void {
  const validFrom = new Date(certificate.validFrom)
  const validTo = new Date(certificate.validTo)
  const fields = { subject: certificate.subject.replaceAll('\n', ', '), valid_to: validTo.toISOString(), fingerprint256: certificate.fingerprint256 }
  if (now > validTo.getTime()) log.warn(fields, `${message}; it has EXPIRED: clients will refuse it`)
  else if (now < validFrom.getTime()) log.warn({ ...fields, valid_from: validFrom.toISOString() }, `${message}; it is NOT YET VALID: clients will refuse it`)
  else log.info(fields, message)
}
