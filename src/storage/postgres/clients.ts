import type pg from 'pg'
import type { IdPage } from '../id-order.js'
import type { ClientDeletion } from '../store.js'
import { query, transaction } from './database.js'

export async function listClientGroups(pool: pg.Pool, clientId: string, page: IdPage = {}): Promise<string[]> {
  // "C" order (id-order.ts), read from the cursor on along group_members_client (migration 10).
  const { rows } = await query<{ group_id: string }>(pool, `SELECT group_id COLLATE "C" AS group_id FROM group_members
    WHERE client_id = $1 AND ($2::text IS NULL OR group_id COLLATE "C" > $2::text)
    ORDER BY group_id COLLATE "C" LIMIT $3`, [clientId, page.after ?? null, page.limit ?? null])
  return rows.map((r) => r.group_id)
}

/**
 * Store.deleteClient. An append holds its group's row lock from reading the members to queueing
 * their deliveries (append-function.ts), so the client's groups are locked first, in id order:
 * appends to them before the delete are done (their deliveries are in its queue and go with it),
 * later ones no longer find it a member. A join to another group that races the delete comes
 * after it and stays. Its queue row is locked next (before its rows are deleted), so a delivery
 * still being queued for it elsewhere is either erased or comes after, never left half-counted.
 * Only the groups take locks in a loop, always in the same order, so this cannot deadlock an
 * append (one group, then queue rows in id order); a deadlock with another delete is retried.
 */
export async function deleteClient(pool: pg.Pool, clientId: string): Promise<ClientDeletion> {
  return transaction(pool, async (client) => {
    const { rows: locked } = await client.query<{ group_id: string }>(`SELECT g.group_id FROM groups g
      WHERE g.group_id IN (SELECT m.group_id FROM group_members m WHERE m.client_id = $1)
      ORDER BY g.group_id COLLATE "C" FOR UPDATE OF g`, [clientId])
    const groups = (await client.query('DELETE FROM group_members WHERE client_id = $1 AND group_id = ANY ($2::text[])', [clientId, locked.map((r) => r.group_id)])).rowCount ?? 0
    const keyPackages = (await client.query('DELETE FROM key_packages WHERE client_id = $1', [clientId])).rowCount ?? 0
    await client.query('DELETE FROM handed_out_refs WHERE client_id = $1', [clientId])
    await client.query(`UPDATE client_queues SET first_seq = last_seq + 1, acked_up_to = last_seq, first_welcome = last_welcome + 1
      WHERE client_id = $1`, [clientId])
    const deliveries = (await client.query('DELETE FROM deliveries WHERE client_id = $1', [clientId])).rowCount ?? 0
    const welcomes = (await client.query('DELETE FROM welcomes WHERE client_id = $1', [clientId])).rowCount ?? 0
    return { groups, keyPackages, deliveries, welcomes }
  })
}
