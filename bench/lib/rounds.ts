import type { Settings } from './options.js'

/** One timed run of a side; returns its figures (e.g. { rps, p99 }). */
export type Side = (seconds: number) => Promise<Record<string, number>>

export interface Interleaved {
  readonly a: Record<string, number[]>
  readonly b: Record<string, number[]>
}

/**
 * A warm-up of each side, then A, B, A, B, … so that drift of the machine (thermal, other
 * load, GC state) hits both sides alike. Only the measured rounds are returned.
 */
export async function interleave(settings: Settings, a: Side, b: Side, log: (m: string) => void): Promise<Interleaved> {
  await a(settings.warmupSeconds)
  await b(settings.warmupSeconds)
  const out: Interleaved = { a: {}, b: {} }
  const add = (into: Record<string, number[]>, figures: Record<string, number>) => {
    for (const [k, v] of Object.entries(figures)) (into[k] ??= []).push(v)
  }
  for (let round = 1; round <= settings.rounds; round++) {
    const fa = await a(settings.roundSeconds)
    const fb = await b(settings.roundSeconds)
    log(`    round ${round}: A ${fmt(fa)} | B ${fmt(fb)}`)
    add(out.a, fa)
    add(out.b, fb)
  }
  return out
}

function fmt(figures: Record<string, number>): string {
  return Object.entries(figures).map(([k, v]) => `${k}=${v.toFixed(v < 100 ? 2 : 0)}`).join(' ')
}
