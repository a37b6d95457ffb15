import { applicationMessage } from '../lib/fixtures.js'
import { api } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { figure } from '../lib/result.js'
import { variant } from '../load/variants.js'
import type { ServiceProc } from '../lib/procs.js'
import { b64, mb, withService, type Context, type Scenario } from './context.js'

const GROUP = 'bench-memory'

/**
 * RSS of the service process (/proc/<pid>/status VmRSS) before and after storing N ~1 KB
 * messages over REST, and after deleting the group; then, in a second service that keeps a
 * group's log for one second (GROUP_LOG_MAX_AGE=1s), after storing N again and retention
 * dropping them all. RSS after deletion depends on when V8
 * collects, so it is sampled over a few seconds of light load and the lowest value is kept;
 * V8 does not collect an idle server's old generation on its own, so it is sampled again after
 * one forced major GC (this scenario alone runs the service with --expose-gc and
 * bench/lib/gc-on-signal.mjs, which runs gc() on SIGUSR2). The target figure is the latter:
 * memory the service still holds, not garbage V8 has not got round to.
 */
const GC_ARGS = ['--expose-gc', '--import', './bench/lib/gc-on-signal.mjs']
export const memory: Scenario = {
  key: 'memory',
  title: 'memory: store 1 KB messages, then delete the group, or let retention drop them',
  async run(ctx) {
    const count = ctx.settings.memoryMessages
    const message = await applicationMessage(GROUP)
    const relay = { message: b64(message), groupId: GROUP, senderId: 'alice' }
    const payload = count * message.length
    const retained = await withService(ctx, async (service) => {
      const lowest = lowestRss(ctx, service)
      await api(service.httpUrl, 'POST', '/groups', { group_id: GROUP, creator_id: 'alice' })
      await api(service.httpUrl, 'POST', `/groups/${GROUP}/messages`, { sender_id: 'alice', message: b64(variant(message, 0xffffffff)), message_type: 'Application' })
      const start = await lowest(2)
      checked(await ctx.load.run({ kind: 'http', url: service.httpUrl, connections: 32, method: 'POST', paths: [`/groups/${GROUP}/messages`], relay, amount: count }), 'memory fill (retention)')
      // Until the sweeps have dropped every message (a sweep every second, each a second old).
      const deadline = Date.now() + 120_000
      for (;;) {
        const page = await api<{ messages: unknown[] }>(service.httpUrl, 'GET', `/groups/${GROUP}/messages?after=0&limit=1`)
        if (page.messages.length === 0) break
        if (Date.now() > deadline) throw new Error('GROUP_LOG_MAX_AGE=1s: the log still keeps messages after 2 minutes')
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      const unforced = await lowest(settleSeconds(ctx))
      process.kill(service.pid, 'SIGUSR2')
      const after = await lowest(2)
      ctx.log(`    retention: RSS start ${mb(start).toFixed(1)} MB, after ${count} messages were stored and dropped ${mb(unforced).toFixed(1)} MB, after a forced GC ${mb(after).toFixed(1)} MB`)
      return { start, unforced, after }
    }, { nodeArgs: GC_ARGS, env: { GROUP_LOG_MAX_AGE: '1s', IDEMPOTENCY_WINDOW: '1s', QUEUE_MAX_AGE: '1s' } })
    return withService(ctx, async (service) => {
      await api(service.httpUrl, 'POST', '/groups', { group_id: GROUP, creator_id: 'alice' })
      // Warm the paths once so lazily loaded code is not counted as message storage.
      await api(service.httpUrl, 'POST', `/groups/${GROUP}/messages`, { sender_id: 'alice', message: b64(variant(message, 0xffffffff)), message_type: 'Application' })
      const lowest = lowestRss(ctx, service)
      const start = await lowest(2)
      checked(await ctx.load.run({ kind: 'http', url: service.httpUrl, connections: 32, method: 'POST', paths: [`/groups/${GROUP}/messages`], relay, amount: count }), 'memory fill')
      const { next_seq: nextSeq } = await api<{ next_seq: number }>(service.httpUrl, 'GET', `/groups/${GROUP}`)
      if (nextSeq - 1 !== count + 1) throw new Error(`stored ${nextSeq - 1} messages, expected ${count + 1}`)
      const stored = await lowest(2)
      await api(service.httpUrl, 'DELETE', `/groups/${GROUP}`)
      const unforced = await lowest(settleSeconds(ctx))
      process.kill(service.pid, 'SIGUSR2')
      const after = await lowest(2)
      ctx.log(`    RSS start ${mb(start).toFixed(1)} MB, with ${nextSeq - 1} messages ${mb(stored).toFixed(1)} MB, after delete ${mb(unforced).toFixed(1)} MB, after a forced GC ${mb(after).toFixed(1)} MB; payload ${mb(payload).toFixed(1)} MB`)
      return {
        key: this.key, title: `${this.title} (${count.toLocaleString('en')} messages)`, a: 'RSS change (MB)', b: 'payload (MB)', available: true,
        figures: [
          figure('RSS growth / payload', 'MB', [mb(stored - start)], [mb(payload)], { op: '<=', value: 1.5 }),
          figure('RSS left after delete + GC / payload', 'MB', [mb(after - start)], [mb(payload)], { op: '<=', value: 0.25 }),
          figure('RSS left after delete, no forced GC / payload', 'MB', [mb(unforced - start)], [mb(payload)]),
          figure('RSS left after retention dropped them + GC / payload', 'MB', [mb(retained.after - retained.start)], [mb(payload)], { op: '<=', value: 0.25 }),
          figure('RSS left after retention dropped them, no forced GC / payload', 'MB', [mb(retained.unforced - retained.start)], [mb(payload)]),
        ],
        notes: [
          `RSS start ${mb(start).toFixed(1)} MB, stored ${mb(stored).toFixed(1)} MB, after delete ${mb(unforced).toFixed(1)} MB (lowest sample over ${settleSeconds(ctx)} s of light load), after one forced major GC ${mb(after).toFixed(1)} MB`,
          'the service runs with --expose-gc and a SIGUSR2 → gc() preload in this scenario only (bench/lib/gc-on-signal.mjs)',
          '"back near the start" is read as: at most a quarter of the payload still resident after the delete',
          `retention: a second service with GROUP_LOG_MAX_AGE=1s (and IDEMPOTENCY_WINDOW and QUEUE_MAX_AGE 1s, its lower bounds) stored ${count.toLocaleString('en')} messages again and dropped them all; RSS start ${mb(retained.start).toFixed(1)} MB, after ${mb(retained.unforced).toFixed(1)} MB, after one forced major GC ${mb(retained.after).toFixed(1)} MB`,
        ],
      }
    }, { nodeArgs: GC_ARGS })
  },
}

/** The lowest RSS of the service over `seconds` of light load (a few /health requests), in bytes. */
function lowestRss(ctx: Context, service: ServiceProc): (seconds: number) => Promise<number> {
  const idle = (seconds: number) => ctx.load.run({ kind: 'http', url: service.httpUrl, connections: 4, method: 'GET', paths: ['/health'], seconds })
  return async (seconds) => {
    let low = service.rss()
    const until = Date.now() + seconds * 1000
    while (Date.now() < until) {
      await idle(0.5)
      low = Math.min(low, service.rss())
    }
    return low
  }
}

function settleSeconds(ctx: Context): number {
  return ctx.settings.mode === 'smoke' ? 1 : 5
}
