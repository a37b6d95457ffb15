import type pg from 'pg'
import type { IdPage } from '../id-order.js'
import type { ClientDeletion } from '../store.js'
import { query, transaction, type Queryable } from './database.js'
import { usable } from './key-packages.js'

export async function listClientGroups(pool: pg.Pool, clientId: string, page: IdPage = {}): Promise<string[]> {
  // "C" order (id-order.ts), read from the cursor on along group_members_client (migration 10).
  const { rows } = await query<{ group_id: string }>(pool, `SELECT group_id COLLATE "C" AS group_id FROM group_members
    WHERE client_id = $1 AND ($2::text IS NULL OR group_id COLLATE "C" > $2::text)
    ORDER BY group_id COLLATE "C" LIMIT $3`, [clientId, page.after ?? null, page.limit ?? null])
  return rows.map((r) => r.group_id)
}

/**
 * Store.deleteClient, one transaction that is one atomic step against appends and joins:
 *
 * 1. The client's groups are locked (FOR UPDATE, in id order), read again until no new one
 *    shows up: an append holds its group's row lock from reading the members to queueing their
 *    deliveries (append-function.ts), and a join takes a key-share lock on it, so appends and
 *    joins to those groups are either done (their deliveries are in its queue, and go) or wait
 *    and then find it gone.
 * 2. Its queue row is locked: from here no delivery can be queued for it until the delete is
 *    committed, so what a later join (to a group not seen in 1) brings comes after the delete.
 * 3. Every membership goes. A join committed between 1 and 3 to another group: that group is
 *    locked now too, waiting for an append in flight there, which (waiting for the queue row of
 *    2) is a deadlock PostgreSQL breaks; the transaction is then retried whole, with that group
 *    in 1. An append takes one group lock and then queue rows, so 1 (groups only) cannot
 *    deadlock with one; another delete sharing groups can (out-of-order groups in 3): retried.
 * 4. KeyPackages (a claim of its kept package holds it FOR SHARE, key-packages.ts, so the ref a
 *    claim remembers is committed before and deleted here, or the claim finds nothing), then
 *    the handed-out refs, deliveries and Welcomes.
 */
export async function deleteClient(pool: pg.Pool, clientId: string, now: number): Promise<ClientDeletion> {
  return transaction(pool, async (client) => {
    const locked = new Set<string>()
    for (;;) {
      const { rows } = await client.query<{ group_id: string }>('SELECT group_id FROM group_members WHERE client_id = $1', [clientId])
      const fresh = rows.map((r) => r.group_id).filter((g) => !locked.has(g))
      if (fresh.length === 0) break
      await lockGroups(client, fresh)
      for (const g of fresh) locked.add(g)
    }
    await client.query(`UPDATE client_queues SET first_seq = last_seq + 1, acked_up_to = last_seq, first_welcome = last_welcome + 1
      WHERE client_id = $1`, [clientId])
    const { rows: left } = await client.query<{ group_id: string }>('DELETE FROM group_members WHERE client_id = $1 RETURNING group_id', [clientId])
    const late = left.map((r) => r.group_id).filter((g) => !locked.has(g))
    if (late.length > 0) await lockGroups(client, late)
    const { rows: packages } = await client.query<{ usable: boolean }>(`DELETE FROM key_packages WHERE client_id = $1 RETURNING ${usable('$2')} AS usable`, [clientId, now])
    await client.query('DELETE FROM handed_out_refs WHERE client_id = $1', [clientId])
    const deliveries = (await client.query('DELETE FROM deliveries WHERE client_id = $1', [clientId])).rowCount ?? 0
    const welcomes = (await client.query('DELETE FROM welcomes WHERE client_id = $1', [clientId])).rowCount ?? 0
    return { groups: left.length, keyPackages: packages.filter((p) => p.usable).length, deliveries, welcomes }
  })
}

async function lockGroups(client: Queryable, groupIds: readonly string[]): Promise<void> {
  await client.query(`SELECT group_id FROM groups WHERE group_id = ANY ($1::text[]) ORDER BY group_id COLLATE "C" FOR UPDATE`, [groupIds])
}
