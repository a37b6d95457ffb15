/**
 * Baseline for KeyPackage upload: the service's own validation (inspectKeyPackage from the
 * built dist/mls) over the same KeyPackages in a tight loop, in one process, no I/O.
 * Usage: kp-verify.ts <fixtures.json> <seconds>; prints `RESULT {"perSecond":…}`.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [fixturesFile, secondsArg] = process.argv.slice(2)
const seconds = Number(secondsArg)
const mls = (await import(pathToFileURL(path.resolve('dist/mls/index.js')).href)) as typeof import('../../src/mls/index.js')
const packages = (JSON.parse(readFileSync(fixturesFile!, 'utf8')) as { keyPackages: string[] }).keyPackages.map((b64) => Buffer.from(b64, 'base64'))
const policy = {
  allowedCiphersuites: new Set(mls.supportedCiphersuites().map((s) => s.id)),
  maxLifetimeSeconds: 90 * 86400,
  now: new Date(),
}

async function loop(ms: number, offset: number): Promise<{ count: number; seconds: number }> {
  const start = performance.now()
  let count = 0
  while (performance.now() - start < ms) {
    const result = await mls.inspectKeyPackage(packages[(offset + count) % packages.length]!, policy)
    if (result.kind !== 'key-package') throw new Error('a fixture KeyPackage did not validate')
    count++
  }
  return { count, seconds: (performance.now() - start) / 1000 }
}

await loop(500, 0)
const { count, seconds: took } = await loop(seconds * 1000, 1000)
process.stdout.write(`RESULT ${JSON.stringify({ ok: count, seconds: took, perSecond: count / took })}\n`)
