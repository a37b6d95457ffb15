import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'

const ROOT = path.resolve(import.meta.dirname, '../..')
const OUT = 'bench/results/smoke-test.json'
const MEMORY = ['relay-rest', 'relay-rest-cost', 'relay-rest-auth', 'relay-tcp-1', 'relay-tcp-16', 'fanout-10', 'fanout-100', 'kp-upload', 'kp-claim', 'read-messages', 'memory']
const POSTGRES = ['relay-rest-pg', 'fanout-10-pg', 'fanout-100-pg', 'kp-claim-pg']
const SCENARIOS = [...MEMORY, ...POSTGRES, 'relay-rest-pg-x2']

// Runs the whole harness in its tiny mode: it must build, run every scenario and write
// valid JSON. No timing is asserted: CI machines are too noisy for that. The PostgreSQL
// scenarios start the bench's own throwaway cluster (the installed server binaries, as the
// PostgreSQL tests need them too, or DATABASE_URL).
test('npm run bench -- --smoke runs every scenario and writes its results', { timeout: 240_000 }, async () => {
  rmSync(path.join(ROOT, OUT), { force: true })
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--smoke', `--out=${OUT}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const [code] = (await once(child, 'exit')) as [number | null]
  assert.equal(code, 0, output)

  const results = JSON.parse(readFileSync(path.join(ROOT, OUT), 'utf8')) as {
    mode: string
    machine: { nproc: number; node: string }
    scenarios: Record<string, { error?: string; store: string; available: boolean; figures: { name: string; ratio: number | null }[] }>
    storeComparison: { figure: string; postgresOverMemory: number | null }[]
  }
  assert.equal(results.mode, 'smoke')
  assert.ok(results.machine.nproc >= 1)
  assert.deepEqual(Object.keys(results.scenarios).sort(), [...SCENARIOS].sort())
  for (const key of SCENARIOS) {
    const scenario = results.scenarios[key]!
    assert.equal(scenario.error, undefined, `${key}: ${scenario.error}`)
    assert.ok(scenario.figures.length > 0, `${key} has figures`)
  }
  for (const key of ['fanout-10', 'fanout-100', 'fanout-10-pg', 'fanout-100-pg']) {
    const fanout = results.scenarios[key]!
    assert.equal(fanout.available, true, `${key} measures the service stream`)
    assert.ok(fanout.figures.every((f) => f.ratio !== null), `${key} has a ratio for every figure`)
  }
  for (const key of [...POSTGRES, 'relay-rest-pg-x2']) assert.equal(results.scenarios[key]!.store, 'postgres', `${key} runs on PostgreSQL`)
  // Every PostgreSQL scenario sits beside its memory twin, figure by figure.
  const compared = new Set(results.storeComparison.map((row) => row.figure.split(':')[0]))
  assert.deepEqual([...compared].sort(), POSTGRES.map((key) => key.replace(/-pg$/, '')).sort())
  assert.ok(results.storeComparison.every((row) => row.postgresOverMemory !== null))
  assert.match(output, /\| figure \|/)
  assert.match(output, /Memory vs PostgreSQL/)
})
