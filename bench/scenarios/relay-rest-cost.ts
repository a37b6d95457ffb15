import { api } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { startBaseline } from '../lib/procs.js'
import { figure, type Figure } from '../lib/result.js'
import { interleave, type Side } from '../lib/rounds.js'
import type { Context, Scenario } from './context.js'
import { relayMessage } from './relay-rest.js'

const CONNECTIONS = 100
/** Busy CPU added per request, in µs. */
const ADDED = [5, 10, 20] as const

/**
 * Calibration, no target: the bare route of relay-rest with N µs of busy CPU added to each
 * request, against the bare route, under the same load. It tells what a relay-rest ratio
 * means in CPU per request on the machine at hand.
 */
export const relayRestCost: Scenario = {
  key: 'relay-rest-cost',
  title: `what CPU per request costs over REST: the bare route with ${ADDED.join(', ')} µs of busy work added, ${CONNECTIONS} connections`,
  store: 'memory',
  async run(ctx) {
    const relay = await relayMessage()
    const bare = await startBaseline('http-relay')
    const figures: Figure[] = []
    try {
      for (const added of ADDED) {
        const busy = await startBaseline('http-relay', [`--busy-us=${added}`])
        try {
          ctx.log(`  +${added} µs per request`)
          const rounds = await interleave(ctx.settings, side(ctx, busy.info.port, relay), side(ctx, bare.info.port, relay), ctx.log)
          figures.push(figure(`req/s with +${added} µs per request`, 'req/s', rounds.a.rps!, rounds.b.rps!))
        } finally {
          await busy.stop()
        }
      }
    } finally {
      await bare.stop()
    }
    return {
      key: this.key, title: this.title, a: 'bare Fastify route + N µs of busy CPU per request', b: 'bare Fastify route', available: true, figures,
      notes: [
        'no service runs here; read relay-rest against these rows: its ratio is what this much added CPU per request costs on this machine',
        'the cost grows faster than the CPU added: a slower server leaves the load generator idle, and each response then wakes it (a cross-CPU wake-up, dear in a VM)',
      ],
    }
  },
}

function side(ctx: Context, port: number, relay: Awaited<ReturnType<typeof relayMessage>>): Side {
  const url = `http://127.0.0.1:${port}`
  return async (seconds) => {
    const r = checked(await ctx.load.run({ kind: 'http', url, connections: CONNECTIONS, method: 'POST', paths: ['/groups/bench-relay/messages'], relay, seconds }), url)
    await api(url, 'DELETE', '/reset')
    return { rps: r.perSecond }
  }
}
