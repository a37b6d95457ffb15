import { applicationMessage } from '../lib/fixtures.js'
import { recreateGroup } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { startBaseline } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { tcpRequest } from '../lib/tcp-control.js'
import { withService, type Scenario } from './context.js'
import { assertAllStored } from './relay-check.js'

const GROUP = 'bench-tcp'
const CONNECTIONS = 100
const OK = '{"type":"MessageResponse"'

/** RelayMessage over the legacy TCP door (1 KB as a byte array), vs a bare node:net server. */
export function relayTcp(inFlight: number): Scenario {
  return {
    key: `relay-tcp-${inFlight}`,
    title: `relay over the legacy TCP door: RelayMessage 1 KB, ${CONNECTIONS} connections × ${inFlight} in flight`,
    async run(ctx) {
      const message = await applicationMessage(GROUP)
      const relay = { message: Buffer.from(message).toString('base64'), groupId: GROUP, senderId: 'alice' }
      const baseline = await startBaseline('tcp-relay')
      try {
        return await withService(ctx, async (service) => {
          const resetService = () => recreateGroup(service.httpUrl, GROUP, 'alice')
          await resetService()
          const side = (port: number, reset: () => Promise<unknown>) => async (seconds: number) => {
            const r = checked(await ctx.load.run({ kind: 'tcp', port, connections: CONNECTIONS, inFlight, relay, okPrefix: OK, seconds }), `tcp:${port}`)
            if (port === service.tcpPort) await assertAllStored(service.httpUrl, GROUP, r.ok)
            await reset()
            return { rps: r.perSecond, p99: r.p99Ms }
          }
          const port = baseline.info.port
          const rounds = await interleave(ctx.settings, side(service.tcpPort, resetService), side(port, () => tcpRequest(port, { type: 'Reset' })), ctx.log)
          return {
            key: this.key, title: this.title, a: 'service', b: 'bare node:net server', available: true,
            figures: [
              figure('req/s', 'req/s', rounds.a.rps!, rounds.b.rps!, { op: '>=', value: 0.7 }),
              figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!),
            ],
            notes: [`every request a distinct copy of one ${message.length} B PrivateMessage as a JSON byte array (~${4 * message.length} B a line)`],
          }
        })
      } finally {
        await baseline.stop()
      }
    },
  }
}
