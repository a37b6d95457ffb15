import { checked } from '../lib/load-client.js'
import { startBaseline } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import type { Scenario } from './context.js'

export const NOT_AVAILABLE = 'not available: the harness does not drive a service stream yet'

/**
 * One sender, `members` receivers on WebSocket streams. The service has no streaming
 * endpoint yet, so only the bare ws broadcast baseline is measured; the service side and the
 * ratio are reported as not available rather than made up.
 */
export function fanout(members: number): Scenario {
  return {
    key: `fanout-${members}`,
    title: `fan-out: one sender, ${members} members on WebSocket streams`,
    async run(ctx) {
      const baseline = await startBaseline('ws-broadcast')
      try {
        const url = `ws://127.0.0.1:${baseline.info.port}/`
        const once = async (seconds: number) =>
          checked(await ctx.load.run({ kind: 'ws', url, members, window: 16, payloadBytes: 1024, seconds }), 'ws baseline')
        await once(ctx.settings.warmupSeconds)
        const rates: number[] = []
        const p99s: number[] = []
        for (let round = 1; round <= ctx.settings.rounds; round++) {
          const r = await once(ctx.settings.roundSeconds)
          ctx.log(`    round ${round}: B deliveries/s=${r.perSecond.toFixed(0)} p99=${r.p99Ms.toFixed(2)}`)
          rates.push(r.perSecond)
          p99s.push(r.p99Ms)
        }
        return {
          key: this.key, title: this.title, a: 'service', b: 'bare ws broadcast server', available: false,
          figures: [
            figure('deliveries/s', 'msg/s', [], rates, { op: '>=', value: 0.7 }),
            figure('p99 to last member', 'ms', [], p99s),
          ],
          notes: [`service: ${NOT_AVAILABLE} (a WebSocket stream endpoint landed in src/ while this harness was written; no number is made up); the baseline is measured so only the service side remains to wire`],
        }
      } finally {
        await baseline.stop()
      }
    },
  }
}
