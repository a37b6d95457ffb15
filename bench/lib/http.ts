/** Small HTTP calls for setting scenarios up (not for load: that is autocannon's job). */
export async function api<T = unknown>(base: string, method: string, path: string, body?: unknown, headers: Readonly<Record<string, string>> = {}): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? { ...headers } : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`)
  return (text ? JSON.parse(text) : undefined) as T
}

/** Runs `task` over items with at most `limit` at once. */
export async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!)
  })
  await Promise.all(workers)
}

/** Deletes the group if it exists and creates it again, empty, with its creator as only member (`headers`: the creator's token). */
export async function recreateGroup(base: string, group: string, creator: string, headers: Readonly<Record<string, string>> = {}): Promise<void> {
  await api(base, 'DELETE', `/groups/${encodeURIComponent(group)}`, undefined, headers).catch(() => undefined)
  await api(base, 'POST', '/groups', { group_id: group, creator_id: creator }, headers)
}
