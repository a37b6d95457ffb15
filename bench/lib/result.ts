import { ratio, summarize, type Sample } from './stats.js'

/** A target on the ratio A/B: e.g. service req/s ≥ 0.80 × baseline, or p99 ≤ 2 × baseline. */
export interface Target {
  readonly op: '>=' | '<='
  readonly value: number
}

export interface Figure {
  readonly name: string
  readonly unit: string
  readonly a: Sample | null
  readonly b: Sample | null
  /** a.median / b.median */
  readonly ratio: number | null
  readonly target: Target | null
  /** null: no target, or it could not be measured. */
  readonly met: boolean | null
}

/** Where the service under test keeps its state (`STORE`). */
export type BenchStore = 'memory' | 'postgres'

export interface ScenarioResult {
  readonly key: string
  readonly title: string
  /** The service's store; the harness fills it in from the scenario. */
  readonly store?: BenchStore
  /** What A and B are (A is the service unless said otherwise). */
  readonly a: string
  readonly b: string
  /** false when A cannot be measured at all; `figures` then hold what could be. */
  readonly available: boolean
  readonly figures: readonly Figure[]
  readonly notes: readonly string[]
  readonly error?: string
}

export function figure(name: string, unit: string, a: readonly number[], b: readonly number[], target?: Target): Figure {
  const sa = summarize(a)
  const sb = summarize(b)
  const r = ratio(sa, sb)
  const met = target && r !== null ? (target.op === '>=' ? r >= target.value : r <= target.value) : null
  return { name, unit, a: sa, b: sb, ratio: r, target: target ?? null, met }
}
