import { api, pool } from '../lib/http.js'
import { checked } from '../lib/load-client.js'
import type { ServiceProc } from '../lib/procs.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { onStore, POSTGRES_NOTE, withService, type BenchStore, type Context, type Scenario } from './context.js'

const CONNECTIONS = 100
const SMALL = 10
const BATCH = 500

/**
 * A client's pool as the service orders it: claims take from the front (upload order), and
 * a refill re-uploads the claimed ones, which go to the back. Mirrored here so a refill
 * uploads exactly what was claimed.
 */
interface Pool {
  readonly client: string
  order: string[]
  readonly size: number
}

/**
 * Claim rate from pools of 10,000 (A) and of 10 (B). Claims remove KeyPackages, so each
 * measured window starts with every pool exactly full and claims a fixed number: half of
 * the big pool from one client, or 5 from each of many 10-pools. Refills (full validation,
 * slow) happen outside the windows.
 */
export function kpClaim(store: BenchStore): Scenario {
  const { key, title } = onStore(store, 'kp-claim', 'claim KeyPackages (GET /key-packages/{client}): one big pool vs pools of 10')
  return {
    key, title, store,
    async run(ctx) {
      const { claimsPerWindow, bigPool } = ctx.settings
      const packages = await ctx.keyPackages()
      if (packages.length < bigPool) throw new Error(`need ${bigPool} KeyPackages, have ${packages.length}`)
      const big: Pool = { client: 'claim-big', order: packages.slice(0, bigPool), size: bigPool }
      const smallCount = Math.ceil(claimsPerWindow / (SMALL / 2))
      const smalls: Pool[] = Array.from({ length: smallCount }, (_, j) => ({
        client: `claim-small-${j}`,
        order: Array.from({ length: SMALL }, (_, t) => packages[(j * SMALL + t) % packages.length]!),
        size: SMALL,
      }))
      return withService(ctx, async (service) => {
        ctx.log(`    filling: 1 pool of ${bigPool} and ${smallCount} pools of ${SMALL} (full validation; takes a while)`)
        await upload(service, [{ client: big.client, kps: big.order }])
        await upload(service, smalls.map((p) => ({ client: p.client, kps: p.order })))
        const side = (pools: Pool[], claims: number) => async () => {
          const paths = pools.map((p) => `/key-packages/${encodeURIComponent(p.client)}`)
          const r = checked(await ctx.load.run({ kind: 'http', url: service.httpUrl, connections: CONNECTIONS, method: 'GET', paths, amount: claims }), 'claim')
          await refill(ctx, service, pools)
          return { rate: r.perSecond, p99: r.p99Ms, seconds: r.seconds }
        }
        const rounds = await interleave(ctx.settings, side([big], bigPool / 2), side(smalls, smallCount * (SMALL / 2)), ctx.log)
        const windows = [...rounds.a.seconds!, ...rounds.b.seconds!]
        const where = store === 'memory' ? '' : ', on PostgreSQL'
        return {
          key, title, a: `pool of ${bigPool}${where}`, b: `pools of ${SMALL}${where}`, available: true,
          figures: [
            figure('claims/s', '/s', rounds.a.rate!, rounds.b.rate!, { op: '>=', value: 0.9 }),
            figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!),
          ],
          notes: [
            `windows are count-bound: ${bigPool / 2} claims from one pool of ${bigPool} (it ends at ${bigPool / 2}), or 5 from each of ${smallCount} pools of ${SMALL}`,
            `measured windows took ${Math.min(...windows).toFixed(2)}–${Math.max(...windows).toFixed(2)} s (refilling means full validation of every claimed KeyPackage, so windows cannot be 5 s long)`,
            ...(store === 'memory' ? [] : [POSTGRES_NOTE]),
          ],
        }
      }, { store })
    },
  }
}

async function upload(service: ServiceProc, items: readonly { client: string; kps: readonly string[] }[]): Promise<void> {
  // Batches of one client go in order (the mirror relies on upload order); clients in parallel.
  await pool(items, 4, async ({ client, kps }) => {
    for (let i = 0; i < kps.length; i += BATCH) {
      await api(service.httpUrl, 'PUT', `/key-packages/${encodeURIComponent(client)}`, { key_packages: kps.slice(i, i + BATCH) })
    }
  })
}

/** Puts back exactly the KeyPackages claimed from each pool, so the next window starts full. */
async function refill(ctx: Context, service: ServiceProc, pools: readonly Pool[]): Promise<void> {
  const items: { client: string; kps: string[] }[] = []
  await pool(pools, 16, async (p) => {
    const { total } = await api<{ total: number }>(service.httpUrl, 'GET', `/key-packages/${encodeURIComponent(p.client)}/count`)
    const claimed = p.size - total
    if (claimed <= 0) return
    const taken = p.order.splice(0, claimed)
    p.order.push(...taken)
    items.push({ client: p.client, kps: taken })
  })
  await upload(service, items)
  const check = await api<{ total: number }>(service.httpUrl, 'GET', `/key-packages/${encodeURIComponent(pools[0]!.client)}/count`)
  if (check.total !== pools[0]!.size) ctx.log(`    warning: pool ${pools[0]!.client} holds ${check.total}, not ${pools[0]!.size}, after refill`)
}
