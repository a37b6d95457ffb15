/**
 * Prints the functions with the most self time in a V8 .cpuprofile (from `npm run bench --
 * --profile`, which starts the service with --cpu-prof). Usage: tsx bench/profile-summary.ts <file> [top]
 */
import { readFileSync } from 'node:fs'

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[] }

const [file, topArg] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file!, 'utf8')) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map<string, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0
  total += dt
  const f = byId.get(id)!.callFrame
  const where = f.url ? `${f.url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${f.lineNumber + 1}` : '(native)'
  const key = `${f.functionName || '(anonymous)'}  ${where}`
  self.set(key, (self.get(key) ?? 0) + dt)
})
const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 25))
for (const [key, us] of rows) process.stdout.write(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}\n`)
