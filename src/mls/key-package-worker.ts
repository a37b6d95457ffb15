/**
 * Worker-thread entry of the KeyPackage pool (key-package-pool.ts): runs inspectKeyPackage
 * for each request and answers with the inspection, or the check and message of its
 * MlsValidationError. Requests are handled concurrently, as on the main thread.
 */
import { parentPort } from 'node:worker_threads'
import { isMlsValidationError } from './errors.js'
import { inspectKeyPackage, type KeyPackagePolicy } from './key-package.js'

interface Request {
  readonly id: number
  readonly bytes: Uint8Array
  readonly policy: KeyPackagePolicy
}

const port = parentPort
if (!port) throw new Error('key-package-worker must run in a worker thread')

port.on('message', ({ id, bytes, policy }: Request) => {
  inspectKeyPackage(bytes, policy).then(
    (value) => port.postMessage({ id, ok: true, value }),
    (err: unknown) => port.postMessage(isMlsValidationError(err)
      ? { id, ok: false, check: err.check, message: err.message }
      : { id, ok: false, message: err instanceof Error ? err.message : String(err) }),
  )
})
