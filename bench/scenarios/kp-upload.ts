import { KEY_PACKAGE_FILE } from '../lib/fixtures.js'
import { checked } from '../lib/load-client.js'
import { runForResult } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { withService, type Scenario } from './context.js'

const CONNECTIONS = 8

/**
 * PUT /key-packages/{client} with full validation: every request a different client and a
 * different KeyPackage (within a round), vs inspectKeyPackage over the same KeyPackages in
 * a tight loop in one process.
 */
export const kpUpload: Scenario = {
  key: 'kp-upload',
  title: `KeyPackage upload with full validation, ${CONNECTIONS} connections`,
  async run(ctx) {
    const packages = await ctx.keyPackages()
    const bodies = packages.map((kp) => JSON.stringify({ key_package: kp }))
    let round = 0
    return withService(ctx, async (service) => {
      const a = async (seconds: number) => {
        const prefix = `upload-${round++}`
        const paths = packages.map((_, i) => `/key-packages/${prefix}-${i}`)
        const r = checked(await ctx.load.run({ kind: 'http', url: service.httpUrl, connections: CONNECTIONS, method: 'PUT', paths, bodies, seconds }), 'upload')
        if (r.ok > packages.length) ctx.log(`    note: ${r.ok} uploads > ${packages.length} distinct KeyPackages; some were uploaded twice (to other clients)`)
        return { rate: r.perSecond, p99: r.p99Ms }
      }
      const b = async (seconds: number) => {
        const r = await runForResult<{ perSecond: number }>('bench/baselines/kp-verify.ts', [KEY_PACKAGE_FILE, String(seconds)])
        return { rate: r.perSecond }
      }
      const rounds = await interleave(ctx.settings, a, b, ctx.log)
      return {
        key: this.key, title: this.title, a: 'service (HTTP)', b: 'inspectKeyPackage loop, one process', available: true,
        figures: [figure('KeyPackages/s', '/s', rounds.a.rate!, rounds.b.rate!, { op: '>=', value: 0.8 })],
        notes: [`${packages.length} distinct suite-1 KeyPackages; service p99 ${Math.max(...rounds.a.p99!).toFixed(1)} ms at most`],
      }
    })
  },
}
