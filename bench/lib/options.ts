/** Run modes: full (the real numbers), quick (~a few minutes), smoke (CI: does it run at all). */
export type Mode = 'full' | 'quick' | 'smoke'

export interface Settings {
  readonly mode: Mode
  /** Measured rounds per side, interleaved A/B/A/B. */
  readonly rounds: number
  readonly roundSeconds: number
  readonly warmupSeconds: number
  /** Messages in the big group of the read scenario. */
  readonly readBigGroup: number
  /** Messages stored by the memory scenario. */
  readonly memoryMessages: number
  /** Distinct KeyPackages generated (and cached) for uploads and claims. */
  readonly keyPackages: number
  /** Claims per measured window of the claim scenario. */
  readonly claimsPerWindow: number
  readonly bigPool: number
  readonly fanoutSizes: readonly number[]
  /** Scenario keys to run; all when empty. */
  readonly only: readonly string[]
  /** Start the service with --cpu-prof (profiles land in bench/results/profiles). */
  readonly profile: boolean
  readonly resultFile: string
}

export function parseOptions(argv: readonly string[]): Settings {
  const flag = (name: string) => argv.includes(`--${name}`)
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  const mode: Mode = flag('smoke') ? 'smoke' : flag('quick') ? 'quick' : 'full'
  const only = (value('only') ?? '').split(',').filter(Boolean)
  const common = { mode, only, profile: flag('profile'), fanoutSizes: [10, 100] }
  const resultFile = value('out') ?? 'bench/results/latest.json'
  switch (mode) {
    case 'full':
      return { ...common, resultFile, rounds: 3, roundSeconds: 5, warmupSeconds: 2, readBigGroup: 1_000_000, memoryMessages: 100_000, keyPackages: 10_000, claimsPerWindow: 5_000, bigPool: 10_000 }
    case 'quick':
      return { ...common, resultFile, rounds: 2, roundSeconds: 2, warmupSeconds: 1, readBigGroup: 100_000, memoryMessages: 100_000, keyPackages: 10_000, claimsPerWindow: 2_000, bigPool: 10_000 }
    case 'smoke':
      return { ...common, resultFile: value('out') ?? 'bench/results/smoke.json', rounds: 1, roundSeconds: 1, warmupSeconds: 0.3, readBigGroup: 2_000, memoryMessages: 2_000, keyPackages: 300, claimsPerWindow: 100, bigPool: 200, fanoutSizes: [10, 100] }
  }
}
