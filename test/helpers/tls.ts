import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after } from 'node:test'
import { generate } from 'selfsigned'

/** A self-signed server certificate for localhost and 127.0.0.1, with its key, as PEM. */
export interface TestCertificate {
  readonly cert: string
  readonly key: string
  /** SHA-256 fingerprint as Node's X509Certificate prints it (AB:CD:…). */
  readonly fingerprint256: string
}

export async function makeCertificate(commonName = 'localhost', validity: { notBeforeDate?: Date; notAfterDate?: Date } = {}): Promise<TestCertificate> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    ...validity,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  })
  const { X509Certificate } = await import('node:crypto')
  return { cert: pems.cert, key: pems.private, fingerprint256: new X509Certificate(pems.cert).fingerprint256 }
}

/** A directory of the suite it is called in, removed after it; `write` puts a certificate's files in it. */
export function useCertificateFiles(): { readonly dir: string; write(certificate: Pick<TestCertificate, 'cert' | 'key'>): Promise<{ certFile: string; keyFile: string }> } {
  let dir: string | undefined
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true })
  })
  return {
    get dir() {
      if (!dir) throw new Error('call write first')
      return dir
    },
    async write(certificate) {
      dir ??= await mkdtemp(path.join(tmpdir(), 'mls-ds-tls-'))
      const certFile = path.join(dir, 'cert.pem')
      const keyFile = path.join(dir, 'key.pem')
      await writeFile(certFile, certificate.cert)
      await writeFile(keyFile, certificate.key, { mode: 0o600 })
      return { certFile, keyFile }
    },
  }
}
