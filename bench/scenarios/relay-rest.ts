import { applicationMessage } from '../lib/fixtures.js'
import { api, recreateGroup } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { cpuMicros, generatorWindow, startBaseline } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import { interleave, type Side } from '../lib/rounds.js'
import type { RelayVariants } from '../load/variants.js'
import { b64, onStore, POSTGRES_NOTE, withService, type BenchStore, type Context, type Scenario } from './context.js'
import { assertAllStored } from './relay-check.js'

const GROUP = 'bench-relay'
const CONNECTIONS = 100
/** Copy numbers of concurrent jobs start this far apart, so no two requests carry the same bytes. */
const COPIES_PER_JOB = 2 ** 30

/** POST /groups/{g}/messages with a 1 KB MLS PrivateMessage, vs a bare Fastify route. */
export function relayRest(store: BenchStore): Scenario {
  const { key, title } = onStore(store, 'relay-rest', `relay over REST: POST /groups/{g}/messages, 1 KB MLS message, ${CONNECTIONS} connections`)
  return {
    key, title, store,
    async run(ctx) {
      const relay = await relayMessage()
      const baseline = await startBaseline('http-relay')
      try {
        return await withService(ctx, async (service) => {
          await recreateGroup(service.httpUrl, GROUP, 'alice')
          const baseUrl = `http://127.0.0.1:${baseline.info.port}`
          const baselineSide = async (seconds: number) => {
            const cpu = cpuMicros(baseline.pid)
            const generator = generatorWindow(ctx.load.pid)
            const r = checked(await ctx.load.run({ kind: 'http', url: baseUrl, connections: CONNECTIONS, method: 'POST', paths: [`/groups/${GROUP}/messages`], relay, seconds }), baseUrl)
            const cpuUs = (cpuMicros(baseline.pid) - cpu) / r.ok
            const gen = generator(r.ok)
            await api(baseUrl, 'DELETE', '/reset')
            return { rps: r.perSecond, p99: r.p99Ms, cpuUs, ...gen }
          }
          const rounds = await interleave(ctx.settings, relaySide(ctx, [service.httpUrl], relay, service.pid), baselineSide, ctx.log)
          // The targets are the in-memory service's; a durable commit per message has none against a bare route.
          const memory = store === 'memory'
          return {
            key, title, a: memory ? 'service' : 'service on PostgreSQL', b: 'bare Fastify route', available: true,
            figures: [
              figure('req/s', 'req/s', rounds.a.rps!, rounds.b.rps!, memory ? { op: '>=', value: 0.8 } : undefined),
              figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!, memory ? { op: '<=', value: 2 } : undefined),
              figure('server CPU per request', 'µs', rounds.a.cpuUs!, rounds.b.cpuUs!),
              figure('load generator CPU per request', 'µs', rounds.a.genCpuUs!, rounds.b.genCpuUs!),
              figure('load generator sleeps', 'per request', rounds.a.genSleeps!, rounds.b.genSleeps!),
            ],
            notes: [
              'every request a distinct copy of one ~1 KB PrivateMessage (bench/load/variants.ts); the group is emptied between rounds, outside the window',
              'server CPU per request: CPU time of the server process over the load window (every thread, from /proc/<pid>/task/*/schedstat) / requests answered 2xx; steadier than req/s on a busy machine',
              'load generator sleeps per request: its voluntary context switches / requests; near 0 while the generator is the busy side, higher when it waits for the server, whose every answer must then wake it on the other CPU',
              ...(memory ? [] : [POSTGRES_NOTE, "server CPU per request counts the service's process only, not PostgreSQL's"]),
            ],
          }
        }, { store })
      } finally {
        await baseline.stop()
      }
    },
  }
}

/** The relayed message, for the group the REST relay scenarios use. */
export async function relayMessage(): Promise<RelayVariants> {
  return { message: b64(await applicationMessage(GROUP)), groupId: GROUP, senderId: 'alice' }
}

/**
 * One timed REST relay round into GROUP against instances sharing one store: the connections
 * are split evenly over `urls`, one load job each, run at once, each with copies of its own.
 * Afterwards the group must hold every acknowledged message (read through the first instance),
 * and it is created again, empty, outside the window. The p99 is the highest of the jobs'. With
 * `pid` (one instance), also the server's CPU time per request over the window (cpuUs).
 */
export function relaySide(ctx: Context, urls: readonly string[], relay: RelayVariants, pid?: number, headers: Readonly<Record<string, string>> = {}): Side {
  return async (seconds) => {
    const cpu = pid === undefined ? 0 : cpuMicros(pid)
    const generator = generatorWindow(ctx.load.pid)
    const jobs = urls.map((url, k) => ctx.load.run({
      kind: 'http', url, connections: Math.round(CONNECTIONS / urls.length), method: 'POST', paths: [`/groups/${GROUP}/messages`], relay, firstCopy: k * COPIES_PER_JOB, seconds, headers,
    }))
    const results = (await Promise.all(jobs)).map((r, k) => checked(r, urls[k]!))
    const ok = results.reduce((n, r) => n + r.ok, 0)
    const cpuUs = pid === undefined ? undefined : (cpuMicros(pid) - cpu) / ok
    const gen = generator(ok)
    await assertAllStored(urls[0]!, GROUP, ok, headers)
    await recreateGroup(urls[0]!, GROUP, 'alice', headers)
    return { rps: results.reduce((n, r) => n + r.perSecond, 0), p99: Math.max(...results.map((r) => r.p99Ms)), ...gen, ...(cpuUs === undefined ? {} : { cpuUs }) }
  }
}
