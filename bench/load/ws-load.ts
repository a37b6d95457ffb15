import WebSocket from 'ws'
import { percentile } from '../lib/stats.js'
import type { LoadResult, WsJob } from './jobs.js'

/**
 * Fan-out load: `members` WebSocket receivers and one sender. The sender keeps `window`
 * messages outstanding; a message is done when every member got it. Counts deliveries
 * (messages × members) and the latency from send to the last member's receipt.
 */
export async function runWs(job: WsJob): Promise<LoadResult> {
  const open = (role: string) => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`${job.url}?role=${role}`, { perMessageDeflate: false })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
  const members = await Promise.all(Array.from({ length: job.members }, () => open('member')))
  const sender = await open('sender')
  const payload = Buffer.alloc(job.payloadBytes, 7)
  const pending = new Map<number, { sentAt: number; left: number }>()
  const latencies: number[] = []
  let seq = 0
  let deliveries = 0
  let stopped = false
  const send = () => {
    const id = seq++
    payload.writeUInt32BE(id, 0)
    pending.set(id, { sentAt: performance.now(), left: job.members })
    sender.send(payload)
  }
  for (const member of members) {
    member.on('message', (data: Buffer) => {
      if (stopped) return
      deliveries++
      const id = data.readUInt32BE(0)
      const entry = pending.get(id)
      if (!entry || --entry.left > 0) return
      pending.delete(id)
      latencies.push(performance.now() - entry.sentAt)
      send()
    })
  }
  const start = performance.now()
  for (let i = 0; i < job.window; i++) send()
  await new Promise((r) => setTimeout(r, job.seconds * 1000))
  stopped = true
  const seconds = (performance.now() - start) / 1000
  for (const ws of [sender, ...members]) ws.terminate()
  return { ok: deliveries, failed: 0, seconds, perSecond: deliveries / seconds, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) }
}
