/**
 * `npm run bench [-- --quick | --smoke] [--only=key,key] [--profile]`: builds the service,
 * then runs each scenario against a fresh service process and its baseline, interleaving
 * rounds; prints a table (and memory vs PostgreSQL side by side for the scenarios that ran on
 * both) and writes bench/results/latest.json. A PostgreSQL scenario starts the run's
 * throwaway PostgreSQL; it is stopped at the end.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { keyPackages } from './lib/fixtures.js'
import { LoadClient } from './lib/load-client.js'
import { parseOptions } from './lib/options.js'
import { BenchPostgres } from './lib/postgres.js'
import { ROOT, run } from './lib/procs.js'
import { machine, machineLine, storeComparison, storeTable, table } from './lib/report.js'
import type { ScenarioResult } from './lib/result.js'
import type { Context, Scenario } from './scenarios/context.js'
import { fanout } from './scenarios/fanout.js'
import { kpClaim } from './scenarios/kp-claim.js'
import { kpUpload } from './scenarios/kp-upload.js'
import { memory } from './scenarios/memory.js'
import { readMessages } from './scenarios/read-messages.js'
import { relayRest } from './scenarios/relay-rest.js'
import { relayRestAuth } from './scenarios/relay-rest-auth.js'
import { relayRestCost } from './scenarios/relay-rest-cost.js'
import { relayRestInstances } from './scenarios/relay-rest-instances.js'
import { relayTcp } from './scenarios/relay-tcp.js'

const settings = parseOptions(process.argv.slice(2))
const log = (message: string) => process.stderr.write(`${message}\n`)

const scenarios: Scenario[] = [
  relayRest('memory'),
  relayRestCost,
  relayRestAuth,
  relayTcp(1),
  relayTcp(16),
  ...settings.fanoutSizes.map((members) => fanout(members, 'memory')),
  kpUpload,
  kpClaim('memory'),
  readMessages,
  memory,
  // The PostgreSQL column: the same scenarios with the service on STORE=postgres (keys end in -pg).
  relayRest('postgres'),
  ...settings.fanoutSizes.map((members) => fanout(members, 'postgres')),
  kpClaim('postgres'),
  relayRestInstances,
]
const unknown = settings.only.filter((key) => !scenarios.some((s) => s.key === key))
if (unknown.length) {
  log(`unknown scenario ${unknown.join(', ')}; the keys are: ${scenarios.map((s) => s.key).join(', ')}`)
  process.exit(2)
}
const selected = settings.only.length ? scenarios.filter((s) => settings.only.includes(s.key)) : scenarios

log(`bench (${settings.mode}): building the service (tsc -p tsconfig.build.json)`)
await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'])

const profileDir = settings.profile ? path.join(ROOT, 'bench/results/profiles') : undefined
if (profileDir) mkdirSync(profileDir, { recursive: true })
let packages: Promise<string[]> | undefined
const load = new LoadClient()
const postgres = new BenchPostgres(log)
// An interrupted run still stops its PostgreSQL (the services and the load generator die with the terminal's
// signal). `on`, not `once`: under tsx the signal arrives twice (from the terminal and relayed by tsx), and
// the second must not kill the process halfway through the clean-up.
let interrupted = false
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  process.on(signal, () => {
    if (interrupted) return
    interrupted = true
    void postgres.close().finally(() => process.exit(code))
  })
}
const ctx: Context = {
  settings,
  load,
  log,
  profileDir,
  postgres,
  keyPackages: () => (packages ??= keyPackages(Math.max(settings.keyPackages, settings.bigPool), log)),
}

const startedAt = new Date()
const results: ScenarioResult[] = []
try {
  for (const scenario of selected) {
    log(`- ${scenario.key}: ${scenario.title}`)
    const t = performance.now()
    const store = scenario.store ?? 'memory'
    try {
      const { key, title, ...result } = await scenario.run(ctx)
      results.push({ key, title, store, ...result })
    } catch (err) {
      log(`  FAILED: ${(err as Error).stack ?? String(err)}`)
      results.push({ key: scenario.key, title: scenario.title, store, a: '', b: '', available: false, figures: [], notes: [], error: (err as Error).message })
    }
    log(`  (${((performance.now() - t) / 1000).toFixed(1)} s)`)
  }
} finally {
  load.close()
  await postgres.close()
}

const host = machine()
const comparison = storeComparison(results)
const output = {
  mode: settings.mode,
  startedAt: startedAt.toISOString(),
  seconds: (Date.now() - startedAt.getTime()) / 1000,
  machine: host,
  settings,
  scenarios: Object.fromEntries(results.map((r) => [r.key, r])),
  storeComparison: comparison,
}
const file = path.resolve(ROOT, settings.resultFile)
mkdirSync(path.dirname(file), { recursive: true })
writeFileSync(file, `${JSON.stringify(output, null, 2)}\n`)
const side = comparison.length ? `\n\nMemory vs PostgreSQL (scenarios that ran on both; each against its own run of the baseline):\n\n${storeTable(comparison)}` : ''
process.stdout.write(`\nMachine: ${machineLine(host)}; mode ${settings.mode}, ${settings.rounds} rounds of ${settings.roundSeconds} s per side\n\n${table(results)}${side}\n\nWrote ${path.relative(ROOT, file)}\n`)
if (results.some((r) => r.error)) process.exitCode = 1
