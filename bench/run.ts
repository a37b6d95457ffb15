/**
 * `npm run bench [-- --quick | --smoke] [--only=key,key] [--profile]`: builds the service,
 * then runs each scenario against a fresh service process and its baseline, interleaving
 * rounds; prints a table and writes bench/results/latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { keyPackages } from './lib/fixtures.js'
import { LoadClient } from './lib/load-client.js'
import { parseOptions } from './lib/options.js'
import { ROOT, run } from './lib/procs.js'
import { machine, machineLine, table } from './lib/report.js'
import type { ScenarioResult } from './lib/result.js'
import type { Context, Scenario } from './scenarios/context.js'
import { fanout } from './scenarios/fanout.js'
import { kpClaim } from './scenarios/kp-claim.js'
import { kpUpload } from './scenarios/kp-upload.js'
import { memory } from './scenarios/memory.js'
import { readMessages } from './scenarios/read-messages.js'
import { relayRest } from './scenarios/relay-rest.js'
import { relayTcp } from './scenarios/relay-tcp.js'

const settings = parseOptions(process.argv.slice(2))
const log = (message: string) => process.stderr.write(`${message}\n`)

const scenarios: Scenario[] = [
  relayRest,
  relayTcp(1),
  relayTcp(16),
  ...settings.fanoutSizes.map(fanout),
  kpUpload,
  kpClaim,
  readMessages,
  memory,
]
const selected = settings.only.length ? scenarios.filter((s) => settings.only.includes(s.key)) : scenarios

log(`bench (${settings.mode}): building the service (tsc -p tsconfig.build.json)`)
await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'])

const profileDir = settings.profile ? path.join(ROOT, 'bench/results/profiles') : undefined
if (profileDir) mkdirSync(profileDir, { recursive: true })
let packages: Promise<string[]> | undefined
const load = new LoadClient()
const ctx: Context = {
  settings,
  load,
  log,
  profileDir,
  keyPackages: () => (packages ??= keyPackages(Math.max(settings.keyPackages, settings.bigPool), log)),
}

const startedAt = new Date()
const results: ScenarioResult[] = []
try {
  for (const scenario of selected) {
    log(`- ${scenario.key}: ${scenario.title}`)
    const t = performance.now()
    try {
      results.push(await scenario.run(ctx))
    } catch (err) {
      log(`  FAILED: ${(err as Error).stack ?? String(err)}`)
      results.push({ key: scenario.key, title: scenario.title, a: '', b: '', available: false, figures: [], notes: [], error: (err as Error).message })
    }
    log(`  (${((performance.now() - t) / 1000).toFixed(1)} s)`)
  }
} finally {
  load.close()
}

const host = machine()
const output = {
  mode: settings.mode,
  startedAt: startedAt.toISOString(),
  seconds: (Date.now() - startedAt.getTime()) / 1000,
  machine: host,
  settings,
  scenarios: Object.fromEntries(results.map((r) => [r.key, r])),
}
const file = path.resolve(ROOT, settings.resultFile)
mkdirSync(path.dirname(file), { recursive: true })
writeFileSync(file, `${JSON.stringify(output, null, 2)}\n`)
process.stdout.write(`\nMachine: ${machineLine(host)}; mode ${settings.mode}, ${settings.rounds} rounds of ${settings.roundSeconds} s per side\n\n${table(results)}\n\nWrote ${path.relative(ROOT, file)}\n`)
if (results.some((r) => r.error)) process.exitCode = 1
