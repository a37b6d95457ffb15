import { readFileSync } from 'node:fs'
import os from 'node:os'
import type { Figure, ScenarioResult } from './result.js'

export interface Machine {
  readonly nproc: number
  readonly cpu: string
  readonly node: string
  readonly memoryGb: number
  readonly platform: string
}

export function machine(): Machine {
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown'
  return { nproc: os.availableParallelism(), cpu: model.trim(), node: process.version, memoryGb: Math.round(os.totalmem() / 2 ** 30), platform: `${os.platform()} ${os.release()}` }
}

const num = (v: number | undefined | null) => {
  if (v === undefined || v === null || Number.isNaN(v)) return 'n/a'
  const abs = Math.abs(v)
  return abs >= 100 ? Math.round(v).toLocaleString('en') : abs >= 10 ? v.toFixed(1) : v.toFixed(2)
}

function row(result: ScenarioResult, f: Figure): string[] {
  const spread = (s: Figure['a']) => (s && s.values.length > 1 ? `${num(s.min)}–${num(s.max)}` : '')
  const target = f.target ? `${f.target.op} ${f.target.value}` : ''
  const met = !result.available && f.target ? 'not available' : f.met === null ? '' : f.met ? 'yes' : 'NO'
  return [
    `${result.key}: ${f.name} (${f.unit})`,
    result.available || f.a ? num(f.a?.median) : 'not available',
    num(f.b?.median),
    f.ratio === null ? 'n/a' : f.ratio.toFixed(2),
    [spread(f.a), spread(f.b)].filter(Boolean).join(' / '),
    target,
    met,
  ]
}

/** A Markdown table: figure, A median, B median, ratio A/B, min–max of A / B, target, met. */
export function table(results: readonly ScenarioResult[]): string {
  const header = ['figure', 'A (service) median', 'B (baseline) median', 'A/B', 'min–max A / B', 'target A/B', 'met']
  const rows = results.flatMap((r) => (r.error ? [[`${r.key}`, 'error', '', '', '', '', r.error.split('\n')[0]!.slice(0, 80)]] : r.figures.map((f) => row(r, f))))
  const lines = [header, header.map(() => '---'), ...rows].map((cells) => `| ${cells.join(' | ')} |`)
  const legend = results.filter((r) => !r.error).map((r) => `- ${r.key}: A = ${r.a}, B = ${r.b}${r.available ? '' : ' (A not available)'}`)
  return [...lines, '', ...legend].join('\n')
}

/** One figure of a scenario that ran on both stores: `key` (memory) and `key-pg` (PostgreSQL). */
export interface StoreComparison {
  readonly figure: string
  readonly memory: { readonly a: number | null; readonly b: number | null; readonly ratio: number | null }
  readonly postgres: { readonly a: number | null; readonly b: number | null; readonly ratio: number | null }
  /** PostgreSQL's A median / memory's A median. */
  readonly postgresOverMemory: number | null
}

/** The key of a scenario's PostgreSQL twin is its memory key with this suffix. */
export const PG_SUFFIX = '-pg'

/** The PostgreSQL column: every scenario that ran in this run on both stores, figure by figure. */
export function storeComparison(results: readonly ScenarioResult[]): StoreComparison[] {
  const ok = new Map(results.filter((r) => !r.error).map((r) => [r.key, r]))
  return [...ok.values()].filter((r) => r.store === 'postgres' && r.key.endsWith(PG_SUFFIX)).flatMap((pg) => {
    const memory = ok.get(pg.key.slice(0, -PG_SUFFIX.length))
    if (!memory) return []
    return pg.figures.map((f) => {
      const m = memory.figures.find((x) => x.name === f.name)
      const side = (x: Figure | undefined) => ({ a: x?.a?.median ?? null, b: x?.b?.median ?? null, ratio: x?.ratio ?? null })
      const over = m?.a && f.a && m.a.median !== 0 ? f.a.median / m.a.median : null
      return { figure: `${memory.key}: ${f.name} (${f.unit})`, memory: side(m), postgres: side(f), postgresOverMemory: over }
    })
  })
}

/** The comparison as a Markdown table: medians of A on each store, B of each run, and both ratios. */
export function storeTable(rows: readonly StoreComparison[]): string {
  const ratio = (r: number | null) => (r === null ? 'n/a' : r.toFixed(2))
  const header = ['figure', 'A memory', 'A PostgreSQL', 'PostgreSQL / memory', 'B in the memory / PostgreSQL run', 'A/B memory', 'A/B PostgreSQL']
  const lines = rows.map((r) => [r.figure, num(r.memory.a), num(r.postgres.a), ratio(r.postgresOverMemory), `${num(r.memory.b)} / ${num(r.postgres.b)}`, ratio(r.memory.ratio), ratio(r.postgres.ratio)])
  return [header, header.map(() => '---'), ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n')
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, nproc ${m.nproc}, ${m.memoryGb} GB RAM, Node ${m.node}, ${m.platform}`
}
