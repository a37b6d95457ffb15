import { checked } from '../lib/load-client.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { withService, type Scenario } from './context.js'
import { fillGroup } from './fill.js'

const CONNECTIONS = 32
const SMALL = 100
const PAGE = 100

/** GET /groups/{g}/messages?after=N&limit=100 from a big group (A, random pages) and a group of 100 (B). */
export const readMessages: Scenario = {
  key: 'read-messages',
  title: 'read GET /groups/{g}/messages?after=N&limit=100: big group vs group of 100',
  async run(ctx) {
    const bigCount = ctx.settings.readBigGroup
    return withService(ctx, async (service) => {
      ctx.log(`    filling read-big with ${bigCount} messages over TCP`)
      const fill = await fillGroup(ctx.load, service, 'read-big', bigCount)
      ctx.log(`    filled in ${fill.seconds.toFixed(1)} s (${(bigCount / fill.seconds).toFixed(0)} msg/s)`)
      await fillGroup(ctx.load, service, 'read-small', SMALL)
      const bigPaths = Array.from({ length: 4096 }, () => `/groups/read-big/messages?after=${Math.floor(Math.random() * (bigCount - PAGE))}&limit=${PAGE}`)
      const side = (paths: string[]) => async (seconds: number) => {
        const r = checked(await ctx.load.run({ kind: 'http', url: service.httpUrl, connections: CONNECTIONS, method: 'GET', paths, seconds }), 'read')
        return { rps: r.perSecond, p99: r.p99Ms }
      }
      const rounds = await interleave(ctx.settings, side(bigPaths), side([`/groups/read-small/messages?after=0&limit=${PAGE}`]), ctx.log)
      return {
        key: this.key, title: this.title, a: `group of ${bigCount.toLocaleString('en')}`, b: `group of ${SMALL}`, available: true,
        figures: [
          figure('pages/s', 'req/s', rounds.a.rps!, rounds.b.rps!, { op: '>=', value: 0.9 }),
          figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!),
        ],
        notes: [
          `${PAGE} messages of ${fill.messageBytes} B a page, ${CONNECTIONS} connections; big-group pages start at random seqs`,
          ...(bigCount < 1_000_000 ? [`${ctx.settings.mode} mode: the big group has ${bigCount.toLocaleString('en')} messages, not 1,000,000`] : []),
        ],
      }
    })
  },
}
