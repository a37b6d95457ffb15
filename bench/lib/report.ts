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

export function machineLine(m: Machine): string {
  return `${m.cpu}, nproc ${m.nproc}, ${m.memoryGb} GB RAM, Node ${m.node}, ${m.platform}`
}
