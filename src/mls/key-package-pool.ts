/**
 * Runs inspectKeyPackage (signature checks are most of an upload's cost) on worker threads,
 * so the main thread keeps serving while KeyPackages are verified. The answer is the same as
 * inspectKeyPackage's: an inspection, or an MlsValidationError with the same check.
 * Workers start on first use; if one cannot start or dies, its requests are inspected on
 * the main thread instead, so a broken pool costs speed, never a wrong answer.
 */
import { Worker } from 'node:worker_threads'
import { MlsValidationError, type MlsCheck } from './errors.js'
import { inspectKeyPackage, type KeyPackageInspection, type KeyPackagePolicy } from './key-package.js'

export interface KeyPackageInspector {
  inspect(bytes: Uint8Array, policy: KeyPackagePolicy): Promise<KeyPackageInspection>
  /** Terminates the workers; later inspections run on the calling thread. */
  close(): Promise<void>
}

type Reply =
  | { readonly id: number; readonly ok: true; readonly value: KeyPackageInspection }
  | { readonly id: number; readonly ok: false; readonly check?: MlsCheck; readonly message: string }

interface Job {
  readonly bytes: Uint8Array
  readonly policy: KeyPackagePolicy
  readonly resolve: (value: KeyPackageInspection) => void
  readonly reject: (err: unknown) => void
}

interface Slot {
  readonly worker: Worker
  readonly jobs: Map<number, Job>
}

/** `workers` threads (0 = inspect on the calling thread). */
export function createKeyPackageInspector(workers: number): KeyPackageInspector {
  if (!(workers > 0)) return { inspect: inspectKeyPackage, close: async () => {} }
  return new KeyPackagePool(workers)
}

// Under tsx (tests, `npm run dev`) this module is TypeScript and so is its worker; the worker
// inherits the parent's execArgv (e.g. `--import tsx`), which lets it load the .ts file.
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './key-package-worker.ts' : './key-package-worker.js', import.meta.url)

const MAX_FAILURES = 3

class KeyPackagePool implements KeyPackageInspector {
  readonly #size: number
  readonly #slots: Slot[] = []
  #nextId = 1
  #closed = false
  /** Workers that failed; after a few, no more are started (e.g. the worker file cannot load). */
  #failures = 0

  constructor(size: number) {
    this.#size = size
  }

  inspect = (bytes: Uint8Array, policy: KeyPackagePolicy): Promise<KeyPackageInspection> => {
    const slot = this.#closed ? undefined : this.#pick()
    if (!slot) return inspectKeyPackage(bytes, policy)
    return new Promise((resolve, reject) => {
      const id = this.#nextId++
      slot.jobs.set(id, { bytes, policy, resolve, reject })
      if (slot.jobs.size === 1) slot.worker.ref()
      slot.worker.postMessage({ id, bytes, policy })
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    const slots = this.#slots.splice(0)
    await Promise.all(slots.map(async (slot) => {
      await slot.worker.terminate()
      this.#fallBack(slot)
    }))
  }

  /** The least busy worker, starting one while there are fewer than #size. */
  #pick(): Slot | undefined {
    let best: Slot | undefined
    for (const slot of this.#slots) if (!best || slot.jobs.size < best.jobs.size) best = slot
    if (best && (best.jobs.size === 0 || this.#slots.length >= this.#size)) return best
    if (this.#failures >= MAX_FAILURES) return best
    return this.#start() ?? best
  }

  #start(): Slot | undefined {
    let worker: Worker
    try {
      worker = new Worker(WORKER_URL)
    } catch {
      return undefined
    }
    worker.unref()
    const slot: Slot = { worker, jobs: new Map() }
    this.#slots.push(slot)
    worker.on('message', (reply: Reply) => {
      const job = slot.jobs.get(reply.id)
      if (!job) return
      slot.jobs.delete(reply.id)
      if (slot.jobs.size === 0) worker.unref()
      if (reply.ok) job.resolve(reply.value)
      else job.reject(reply.check ? new MlsValidationError(reply.check, reply.message) : new Error(reply.message))
    })
    // A worker that fails (cannot load, crashes) is dropped; its requests run here instead.
    const drop = () => {
      const index = this.#slots.indexOf(slot)
      if (index >= 0) this.#slots.splice(index, 1)
      this.#fallBack(slot)
    }
    worker.on('error', () => {
      this.#failures++
      drop()
    })
    worker.on('exit', drop)
    return slot
  }

  #fallBack(slot: Slot): void {
    const jobs = [...slot.jobs.values()]
    slot.jobs.clear()
    for (const job of jobs) inspectKeyPackage(job.bytes, job.policy).then(job.resolve, job.reject)
  }
}
