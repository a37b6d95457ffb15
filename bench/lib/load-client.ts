import { fork, type ChildProcess } from 'node:child_process'
import type { LoadJob, LoadResult } from '../load/jobs.js'
import { ROOT } from './procs.js'

/** The harness side of the load-generator process (bench/load/worker.ts). */
export class LoadClient {
  readonly #child: ChildProcess
  readonly #waiting = new Map<number, { resolve: (r: LoadResult) => void; reject: (e: Error) => void }>()
  #next = 0

  constructor() {
    this.#child = fork('bench/load/worker.ts', [], { cwd: ROOT, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.#child.on('message', (m: { id: number; result?: LoadResult; error?: string }) => {
      const waiter = this.#waiting.get(m.id)
      this.#waiting.delete(m.id)
      if (m.error !== undefined) waiter?.reject(new Error(`load generator: ${m.error}`))
      else waiter?.resolve(m.result!)
    })
    this.#child.on('exit', (code) => {
      for (const w of this.#waiting.values()) w.reject(new Error(`load generator exited (${code})`))
      this.#waiting.clear()
    })
  }

  /** The generator's process, to read its CPU time and sleeps. */
  get pid(): number {
    return this.#child.pid!
  }

  run(job: LoadJob): Promise<LoadResult> {
    const id = this.#next++
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject })
      this.#child.send({ id, job })
    })
  }

  close(): void {
    this.#child.disconnect()
  }
}

/** A load result that had failures is not a measurement: fail loudly instead of reporting it. */
export function checked(result: LoadResult, what: string): LoadResult {
  if (result.failed > 0) throw new Error(`${what}: ${result.failed} failed requests (first: ${result.firstError ?? 'unknown'})`)
  if (result.ok === 0) throw new Error(`${what}: no successful requests`)
  return result
}
