import type { LoadClient } from '../lib/load-client.js'
import type { Settings } from '../lib/options.js'
import type { ScenarioResult } from '../lib/result.js'
import { startService, type ServiceProc } from '../lib/procs.js'

export interface Context {
  readonly settings: Settings
  readonly load: LoadClient
  readonly log: (message: string) => void
  /** Distinct KeyPackages (base64), made on first use. */
  readonly keyPackages: () => Promise<readonly string[]>
  /** Where --cpu-prof writes the service's profiles, when profiling. */
  readonly profileDir: string | undefined
}

export interface Scenario {
  readonly key: string
  readonly title: string
  run(ctx: Context): Promise<ScenarioResult>
}

/** A fresh service process for one scenario, stopped afterwards whatever happens. */
export async function withService<T>(ctx: Context, body: (service: ServiceProc) => Promise<T>, nodeArgs?: readonly string[]): Promise<T> {
  const service = await startService({ profileDir: ctx.profileDir, nodeArgs })
  try {
    return await body(service)
  } finally {
    await service.stop()
  }
}

export const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
export const mb = (bytes: number) => bytes / (1024 * 1024)
