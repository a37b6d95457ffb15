import type pg from 'pg'
import type { ContentType, GroupInfoRecord, GroupRecord, MessagePage, MessageType, NewGroup, RemoveMemberResult } from '../store.js'
import { query, toBytes, transaction, withinBytes, type Queryable } from './database.js'

interface GroupRow {
  group_id: string
  creator_id: string
  epoch: number
  group_info_epoch: number | null
  members: string[]
  next_seq: number
  created_at: number
}

const SELECT_GROUP = `
  SELECT group_id, creator_id, epoch, group_info_epoch, next_seq, created_at,
    ARRAY(SELECT client_id FROM group_members m WHERE m.group_id = g.group_id ORDER BY joined) AS members
  FROM groups g WHERE group_id = $1`

export async function createGroup(pool: pg.Pool, group: NewGroup): Promise<GroupRecord | undefined> {
  return transaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `INSERT INTO groups (group_id, creator_id, epoch, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (group_id) DO NOTHING`,
      [group.groupId, group.creatorId, group.epoch, group.createdAt],
    )
    if (rowCount !== 1) return undefined
    await client.query('INSERT INTO group_members (group_id, client_id) VALUES ($1, $2)', [group.groupId, group.creatorId])
    return readGroup(client, group.groupId)
  })
}

export async function getGroup(pool: pg.Pool, groupId: string): Promise<GroupRecord | undefined> {
  const { rows } = await query<GroupRow>(pool, SELECT_GROUP, [groupId])
  return rows[0] && toGroup(rows[0])
}

export async function readGroup(db: Queryable, groupId: string): Promise<GroupRecord | undefined> {
  const { rows } = await db.query<GroupRow>(SELECT_GROUP, [groupId])
  return rows[0] && toGroup(rows[0])
}

/** Its messages, members and idempotency keys go with it (ON DELETE CASCADE); queues keep their copies. */
/**
 * Deletes the group, its members and its log. Deliveries of its messages still queued outlive
 * it, as in memory: they share the log's bytes (migration 8), so those are copied into them
 * first, under the group's row lock, after any append in flight (which holds it) is done.
 */
export async function deleteGroup(pool: pg.Pool, groupId: string): Promise<boolean> {
  return transaction(pool, async (client) => {
    if ((await client.query('SELECT 1 FROM groups WHERE group_id = $1 FOR UPDATE', [groupId])).rowCount === 0) return false
    await client.query(`UPDATE deliveries d SET data = m.data FROM messages m
      WHERE d.group_id = $1 AND d.data IS NULL AND m.group_id = $1 AND m.seq = d.group_seq`, [groupId])
    await client.query('DELETE FROM groups WHERE group_id = $1', [groupId])
    return true
  })
}

/** SQLSTATE foreign_key_violation. */
const FOREIGN_KEY_VIOLATION = '23503'

export async function addMember(pool: pg.Pool, groupId: string, clientId: string): Promise<GroupRecord | undefined> {
  try {
    return await joinGroup(pool, groupId, clientId)
  } catch (err) {
    // The group was deleted while the join waited for its row (the foreign key check): the join
    // found a group that is gone by the time it would be a member of it. No such group, not a 500.
    if ((err as { code?: unknown }).code === FOREIGN_KEY_VIOLATION) return undefined
    throw err
  }
}

function joinGroup(pool: pg.Pool, groupId: string, clientId: string): Promise<GroupRecord | undefined> {
  return transaction(pool, async (client) => {
    // The foreign key check takes a KEY SHARE lock on the group row, so a join waits for an
    // append in progress (which holds FOR UPDATE) and fan-out sees a consistent member list.
    const { rowCount } = await client.query(
      `INSERT INTO group_members (group_id, client_id) SELECT group_id, $2 FROM groups WHERE group_id = $1
       ON CONFLICT (group_id, client_id) DO NOTHING`,
      [groupId, clientId],
    )
    if (rowCount === 0 && !(await client.query('SELECT 1 FROM groups WHERE group_id = $1', [groupId])).rowCount) return undefined
    return readGroup(client, groupId)
  })
}

export async function removeMember(pool: pg.Pool, groupId: string, clientId: string): Promise<RemoveMemberResult> {
  const { rows } = await query<{ group_found: boolean; removed: boolean }>(pool, `
    WITH removed AS (DELETE FROM group_members WHERE group_id = $1 AND client_id = $2 RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM groups WHERE group_id = $1) AS group_found, EXISTS (SELECT 1 FROM removed) AS removed`,
  [groupId, clientId])
  const row = rows[0]!
  if (row.removed) return 'removed'
  return row.group_found ? 'not_member' : 'no_group'
}

interface MessageRow {
  seq: number | null
  sender_id: string
  message_type: MessageType
  data: Buffer
  received_at: number
  epoch: number | null
  content_type: ContentType | null
}

const READ_MESSAGES = `
  SELECT m.seq, m.sender_id, m.message_type, m.data, m.received_at, m.epoch, m.content_type,
    COALESCE((SELECT min(f.seq) FROM messages f WHERE f.group_id = g.group_id), g.next_seq) AS first_seq
  FROM groups g LEFT JOIN LATERAL (${withinBytes(`
    SELECT * FROM messages WHERE group_id = g.group_id AND seq > $2 ORDER BY seq LIMIT $3`, '$4')}
  ) m ON true
  WHERE g.group_id = $1 ORDER BY m.seq`

export async function readMessages(pool: pg.Pool, groupId: string, after: number, limit: number, maxBytes: number): Promise<MessagePage | undefined> {
  // One statement: the group's existence, its page and its first seq come from the same snapshot.
  const { rows } = await query<MessageRow & { first_seq: number }>(pool, READ_MESSAGES, [groupId, after, limit, maxBytes])
  if (rows.length === 0) return undefined
  const messages = rows.filter((r) => r.seq !== null).map((r) => ({
    seq: r.seq!,
    senderId: r.sender_id,
    messageType: r.message_type,
    data: toBytes(r.data),
    receivedAt: r.received_at,
    epoch: r.epoch,
    contentType: r.content_type,
  }))
  return { messages, firstSeq: rows[0]!.first_seq }
}

/** Messages purgeGroupLogs drops per call, about. */
const PURGE_BATCH = 1000

/**
 * Store.purgeGroupLogs: the groups of old messages (found by the BRIN index of migration 11,
 * in about the order they were written), each dropping the prefix of its log up to its first
 * young message, until PURGE_BATCH are dropped, one statement per group in one transaction.
 * Deliveries that share a dropped message's bytes (migration 8) go with it: they are past
 * QUEUE_MAX_AGE (the caller's rule), so their queue's retention drops them at its next look
 * anyway and tells the reader; a read sees the delivery with its bytes, or neither.
 */
export async function purgeGroupLogs(pool: pg.Pool, before: number): Promise<number> {
  return transaction(pool, async (client) => {
    const { rows: groups } = await client.query<{ group_id: string }>(`SELECT DISTINCT o.group_id FROM (
      SELECT group_id FROM messages WHERE received_at < $1 LIMIT ${PURGE_BATCH}) o`, [before])
    let dropped = 0
    for (const { group_id: groupId } of groups) {
      if (dropped >= PURGE_BATCH) break
      const { rows: [log] } = await client.query<{ first: number | null; young: number | null }>(`SELECT
          (SELECT seq FROM messages WHERE group_id = $1 ORDER BY seq LIMIT 1) AS first,
          (SELECT seq FROM messages WHERE group_id = $1 AND received_at >= $2 ORDER BY seq LIMIT 1) AS young`, [groupId, before])
      if (log?.first == null) continue
      const through = Math.min((log.young ?? Infinity) - 1, log.first + PURGE_BATCH - dropped - 1)
      if (through < log.first) continue
      await client.query('DELETE FROM deliveries WHERE group_id = $1 AND data IS NULL AND group_seq <= $2', [groupId, through])
      dropped += (await client.query('DELETE FROM messages WHERE group_id = $1 AND seq <= $2', [groupId, through])).rowCount ?? 0
    }
    return dropped
  })
}

export async function getGroupInfo(pool: pg.Pool, groupId: string): Promise<GroupInfoRecord | undefined> {
  const { rows } = await query<{ epoch: number; data: Buffer; ratchet_tree: Buffer | null; stored_at: number }>(pool, `
    SELECT group_info_epoch AS epoch, group_info AS data, ratchet_tree, group_info_stored_at AS stored_at
    FROM groups WHERE group_id = $1 AND group_info IS NOT NULL`, [groupId])
  const row = rows[0]
  return row && { epoch: row.epoch, data: toBytes(row.data), ratchetTree: row.ratchet_tree && toBytes(row.ratchet_tree), storedAt: row.stored_at }
}

function toGroup(row: GroupRow): GroupRecord {
  return {
    groupId: row.group_id,
    creatorId: row.creator_id,
    createdAt: row.created_at,
    epoch: row.epoch,
    groupInfoEpoch: row.group_info_epoch,
    members: row.members,
    nextSeq: row.next_seq,
  }
}
