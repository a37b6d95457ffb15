import { applicationMessage } from '../lib/fixtures.js'
import { api } from '../lib/http.js'
import { checked, type LoadClient } from '../lib/load-client.js'
import type { ServiceProc } from '../lib/procs.js'
import { assertAllStored } from './relay-check.js'

/** Creates `group` and stores `count` ~1 KB MLS messages in it (distinct copies) through the pipelined TCP door. */
export async function fillGroup(load: LoadClient, service: ServiceProc, group: string, count: number): Promise<{ messageBytes: number; seconds: number }> {
  const message = await applicationMessage(group)
  await api(service.httpUrl, 'POST', '/groups', { group_id: group, creator_id: 'alice' })
  const relay = { message: Buffer.from(message).toString('base64'), groupId: group, senderId: 'alice' }
  const r = checked(await load.run({ kind: 'tcp', port: service.tcpPort, connections: 16, inFlight: 16, relay, okPrefix: '{"type":"MessageResponse"', amount: count }), `fill ${group}`)
  if (r.ok !== count) throw new Error(`fill ${group}: answered ${r.ok} of ${count}`)
  await assertAllStored(service.httpUrl, group, count)
  return { messageBytes: message.length, seconds: r.seconds }
}
