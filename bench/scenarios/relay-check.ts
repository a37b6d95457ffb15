import { api } from '../lib/http.js'

/**
 * Every accepted relay must have stored a new message: if the group holds fewer than were
 * answered, some were deduplicated as retries and the round measured the wrong thing.
 */
export async function assertAllStored(httpUrl: string, group: string, answered: number, headers: Readonly<Record<string, string>> = {}): Promise<void> {
  const { next_seq: nextSeq } = await api<{ next_seq: number }>(httpUrl, 'GET', `/groups/${encodeURIComponent(group)}`, undefined, headers)
  if (nextSeq - 1 < answered) throw new Error(`group ${group} stored ${nextSeq - 1} messages for ${answered} accepted relays: duplicates were measured`)
}
