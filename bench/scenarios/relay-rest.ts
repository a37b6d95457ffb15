import { applicationMessage } from '../lib/fixtures.js'
import { api, recreateGroup } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { startBaseline } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { b64, withService, type Scenario } from './context.js'
import { assertAllStored } from './relay-check.js'

const GROUP = 'bench-relay'
const CONNECTIONS = 100

/** POST /groups/{g}/messages with a 1 KB MLS PrivateMessage, vs a bare Fastify route. */
export const relayRest: Scenario = {
  key: 'relay-rest',
  title: 'relay over REST: POST /groups/{g}/messages, 1 KB MLS message, 100 connections',
  async run(ctx) {
    const relay = { message: b64(await applicationMessage(GROUP)), groupId: GROUP, senderId: 'alice' }
    const baseline = await startBaseline('http-relay')
    try {
      return await withService(ctx, async (service) => {
        const resetService = () => recreateGroup(service.httpUrl, GROUP, 'alice')
        await resetService()
        const side = (url: string, reset: () => Promise<unknown>) => async (seconds: number) => {
          const r = checked(await ctx.load.run({ kind: 'http', url, connections: CONNECTIONS, method: 'POST', paths: [`/groups/${GROUP}/messages`], relay, seconds }), url)
          if (url === service.httpUrl) await assertAllStored(url, GROUP, r.ok)
          await reset()
          return { rps: r.perSecond, p99: r.p99Ms }
        }
        const baseUrl = `http://127.0.0.1:${baseline.info.port}`
        const rounds = await interleave(ctx.settings, side(service.httpUrl, resetService), side(baseUrl, () => api(baseUrl, 'DELETE', '/reset')), ctx.log)
        return {
          key: this.key, title: this.title, a: 'service', b: 'bare Fastify route', available: true,
          figures: [
            figure('req/s', 'req/s', rounds.a.rps!, rounds.b.rps!, { op: '>=', value: 0.8 }),
            figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!, { op: '<=', value: 2 }),
          ],
          notes: ['every request a distinct copy of one ~1 KB PrivateMessage (bench/load/variants.ts); the group is emptied between rounds, outside the window'],
        }
      })
    } finally {
      await baseline.stop()
    }
  },
}
