import { applicationMessage } from '../lib/fixtures.js'
import { api } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { figure } from '../lib/result.js'
import { variant } from '../load/variants.js'
import { b64, mb, withService, type Context, type Scenario } from './context.js'

const GROUP = 'bench-memory'

/**
 * RSS of the service process (/proc/<pid>/status VmRSS) before and after storing N ~1 KB
 * messages over REST, and after deleting the group. RSS after deletion depends on when V8
 * collects, so it is sampled over a few seconds of light load and the lowest value is kept;
 * V8 does not collect an idle server's old generation on its own, so it is sampled again after
 * one forced major GC (this scenario alone runs the service with --expose-gc and
 * bench/lib/gc-on-signal.mjs, which runs gc() on SIGUSR2). The target figure is the latter:
 * memory the service still holds, not garbage V8 has not got round to.
 */
const GC_ARGS = ['--expose-gc', '--import', './bench/lib/gc-on-signal.mjs']
export const memory: Scenario = {
  key: 'memory',
  title: 'memory: store 1 KB messages, then delete the group',
  async run(ctx) {
    const count = ctx.settings.memoryMessages
    const message = await applicationMessage(GROUP)
    const relay = { message: b64(message), groupId: GROUP, senderId: 'alice' }
    return withService(ctx, async (service) => {
      await api(service.httpUrl, 'POST', '/groups', { group_id: GROUP, creator_id: 'alice' })
      // Warm the paths once so lazily loaded code is not counted as message storage.
      await api(service.httpUrl, 'POST', `/groups/${GROUP}/messages`, { sender_id: 'alice', message: b64(variant(message, 0xffffffff)), message_type: 'Application' })
      const idle = (seconds: number) => ctx.load.run({ kind: 'http', url: service.httpUrl, connections: 4, method: 'GET', paths: ['/health'], seconds })
      const lowest = async (seconds: number) => {
        let low = service.rss()
        const until = Date.now() + seconds * 1000
        while (Date.now() < until) {
          await idle(0.5)
          low = Math.min(low, service.rss())
        }
        return low
      }
      const start = await lowest(2)
      checked(await ctx.load.run({ kind: 'http', url: service.httpUrl, connections: 32, method: 'POST', paths: [`/groups/${GROUP}/messages`], relay, amount: count }), 'memory fill')
      const { next_seq: nextSeq } = await api<{ next_seq: number }>(service.httpUrl, 'GET', `/groups/${GROUP}`)
      if (nextSeq - 1 !== count + 1) throw new Error(`stored ${nextSeq - 1} messages, expected ${count + 1}`)
      const stored = await lowest(2)
      await api(service.httpUrl, 'DELETE', `/groups/${GROUP}`)
      const unforced = await lowest(settleSeconds(ctx))
      process.kill(service.pid, 'SIGUSR2')
      const after = await lowest(2)
      const payload = count * message.length
      ctx.log(`    RSS start ${mb(start).toFixed(1)} MB, with ${nextSeq - 1} messages ${mb(stored).toFixed(1)} MB, after delete ${mb(unforced).toFixed(1)} MB, after a forced GC ${mb(after).toFixed(1)} MB; payload ${mb(payload).toFixed(1)} MB`)
      return {
        key: this.key, title: `${this.title} (${count.toLocaleString('en')} messages)`, a: 'RSS change (MB)', b: 'payload (MB)', available: true,
        figures: [
          figure('RSS growth / payload', 'MB', [mb(stored - start)], [mb(payload)], { op: '<=', value: 1.5 }),
          figure('RSS left after delete + GC / payload', 'MB', [mb(after - start)], [mb(payload)], { op: '<=', value: 0.25 }),
          figure('RSS left after delete, no forced GC / payload', 'MB', [mb(unforced - start)], [mb(payload)]),
        ],
        notes: [
          `RSS start ${mb(start).toFixed(1)} MB, stored ${mb(stored).toFixed(1)} MB, after delete ${mb(unforced).toFixed(1)} MB (lowest sample over ${settleSeconds(ctx)} s of light load), after one forced major GC ${mb(after).toFixed(1)} MB`,
          'the service runs with --expose-gc and a SIGUSR2 → gc() preload in this scenario only (bench/lib/gc-on-signal.mjs)',
          '"back near the start" is read as: at most a quarter of the payload still resident after the delete',
        ],
      }
    }, { nodeArgs: GC_ARGS })
  },
}

function settleSeconds(ctx: Context): number {
  return ctx.settings.mode === 'smoke' ? 1 : 5
}
