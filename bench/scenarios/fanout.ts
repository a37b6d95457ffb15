import { applicationMessage } from '../lib/fixtures.js'
import { api, pool, recreateGroup } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import { startBaseline } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { b64, onStore, POSTGRES_NOTE, withService, type BenchStore, type Scenario } from './context.js'

const WINDOW = 16
const SENDER = 'alice'

/**
 * One sender, `members` receivers on WebSocket streams. A: the service's stream
 * `GET /clients/{member}/stream?after=0`, the sender publishing distinct copies of a ~1 KB MLS
 * message as `send` frames on its own stream, and again with `POST /groups/{g}/messages`;
 * B: a bare ws server that forwards each frame of its sender to every member. Both keep 16 messages not yet received by every member.
 * Each service run uses a new group of new members, set up outside the timed window.
 */
export function fanout(members: number, store: BenchStore): Scenario {
  const { key, title } = onStore(store, `fanout-${members}`, `fan-out: one sender, ${members} members on WebSocket streams`)
  return {
    key, title, store,
    async run(ctx) {
      const group = `bench-fanout-${members}`
      const relay = { message: b64(await applicationMessage(group)), groupId: group, senderId: SENDER }
      const baseline = await startBaseline('ws-broadcast')
      try {
        return await withService(ctx, async (service) => {
          let run = 0
          const publishing = async (publish: 'stream' | 'rest', seconds: number) => {
            run++
            const ids = Array.from({ length: members }, (_, i) => `member-${run}-${i}`)
            await recreateGroup(service.httpUrl, group, SENDER)
            await pool(ids, 8, async (id) => { await api(service.httpUrl, 'POST', `/groups/${group}/members`, { client_id: id }) })
            return checked(await ctx.load.run({ kind: 'stream', url: service.httpUrl, members: ids, window: WINDOW, relay, publish, seconds }), `service stream (${publish})`)
          }
          // Both ways of publishing in every A round: on the sender's own stream (like for like
          // with the baseline's sender) and over REST.
          const serviceSide = async (seconds: number) => {
            const onStream = await publishing('stream', seconds)
            const overRest = await publishing('rest', seconds)
            return { rate: onStream.perSecond, p50: onStream.p50Ms, p99: onStream.p99Ms, restRate: overRest.perSecond, restP99: overRest.p99Ms }
          }
          const url = `ws://127.0.0.1:${baseline.info.port}/`
          const baselineSide = async (seconds: number) => {
            const r = checked(await ctx.load.run({ kind: 'ws', url, members, window: WINDOW, payloadBytes: 1024, seconds }), 'ws baseline')
            return { rate: r.perSecond, p50: r.p50Ms, p99: r.p99Ms }
          }
          const rounds = await interleave(ctx.settings, serviceSide, baselineSide, ctx.log)
          // The target is the in-memory service's; every delivery is a committed row on PostgreSQL.
          const memory = store === 'memory'
          return {
            key, title, a: memory ? 'service stream' : 'service stream, on PostgreSQL', b: 'bare ws broadcast server', available: true,
            figures: [
              figure('deliveries/s', 'msg/s', rounds.a.rate!, rounds.b.rate!, memory ? { op: '>=', value: 0.7 } : undefined),
              figure('p50 to last member', 'ms', rounds.a.p50!, rounds.b.p50!),
              figure('p99 to last member', 'ms', rounds.a.p99!, rounds.b.p99!),
              figure('deliveries/s, sender POSTing', 'msg/s', rounds.a.restRate!, rounds.b.rate!),
              figure('p99 to last member, sender POSTing', 'ms', rounds.a.restP99!, rounds.b.p99!),
            ],
            notes: [
              `A: ${members} members on GET /clients/{member}/stream?after=0, one sender publishing distinct copies of a ~1 KB PrivateMessage as send frames on its own stream, ${WINDOW} not yet received by every member; latency from the send to the last member's frame; each member's group_seq checked for gaps and repeats, every send answered "sent"`,
              `A, sender POSTing: the same with the sender on POST /groups/{g}/messages instead (a new group and members, same round); each message then also pays a REST request`,
              `B: a bare ws server forwarding 1 KB binary frames from one sender to ${members} members, ${WINDOW} outstanding`,
              ...(memory ? [] : [`${POSTGRES_NOTE}; members' streams read their deliveries from the database, and each publish also NOTIFYs other instances (none here)`]),
            ],
          }
        }, { store })
      } finally {
        await baseline.stop()
      }
    },
  }
}
