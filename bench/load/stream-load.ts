import http from 'node:http'
import WebSocket from 'ws'
import { percentile } from '../lib/stats.js'
import type { LoadResult, StreamJob } from './jobs.js'
import { restBodyOf, variant } from './variants.js'

/** The last base64 characters of a copy: they hold its 4 distinct bytes (and a few before them). */
const TAIL = 12
const MESSAGE_FIELD = Buffer.from('"message":"')
const GROUP_SEQ_FIELD = Buffer.from('"group_seq":')

/**
 * Fan-out through the service's real stream endpoint. Every member connects to
 * `GET /clients/{member}/stream?after=0` (one JSON text frame per delivery, the delivery at
 * the top level); one sender publishes copy i of an MLS message, either as a `send` frame on
 * its own stream (as the baseline's sender sends on its socket) or with
 * `POST /groups/{g}/messages` over keep-alive HTTP, keeping `window` copies not yet received
 * by every member (as the ws baseline does). A delivery is matched to its copy by the tail of
 * its base64 `message`; each member must see `group_seq` without a gap or a repeat, and every
 * publish must be accepted. Counts deliveries to all members; latency is from the publish to
 * the last member's receipt.
 */
export async function runStream(job: StreamJob): Promise<LoadResult> {
  const wsBase = job.url.replace(/^http/, 'ws')
  const sockets = await Promise.all(job.members.map((member) => open(`${wsBase}/clients/${encodeURIComponent(member)}/stream?after=0`)))
  const original = Buffer.from(job.relay.message, 'base64')
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.window })
  const target = new URL(`/groups/${encodeURIComponent(job.relay.groupId)}/messages`, job.url)
  const senderStream = job.publish === 'stream' ? await open(`${wsBase}/clients/${encodeURIComponent(job.relay.senderId)}/stream?after=0`) : undefined
  const sendFrame = (base64: string) => `{"type":"send","group_id":${JSON.stringify(job.relay.groupId)},"message":"${base64}"}`
  const pending = new Map<string, { sentAt: number; left: number }>()
  const latencies: number[] = []
  let next = 0
  let deliveries = 0
  let failed = 0
  let firstError: string | undefined
  let stopped = false
  // Publishes not answered yet: the run ends only once every one is, so none lands in the
  // group the next run recreates under the same name.
  let unanswered = 0
  const fail = (what: string) => {
    if (stopped) return
    failed++
    firstError ??= what.slice(0, 200)
  }

  const publish = () => {
    const base64 = variant(original, next++).toString('base64')
    pending.set(base64.slice(-TAIL), { sentAt: performance.now(), left: sockets.length })
    unanswered++
    if (senderStream) {
      senderStream.send(sendFrame(base64))
      return
    }
    const body = restBodyOf(job.relay, base64)
    const req = http.request(target, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { text += c })
      res.on('end', () => {
        unanswered--
        if (res.statusCode === undefined || res.statusCode >= 300) fail(`POST: HTTP ${res.statusCode} ${text}`)
      })
    })
    req.on('error', (err) => {
      unanswered--
      fail(`POST: ${err.message}`)
    })
    req.end(body)
  }

  // The sender's stream carries only the answers to its sends (a sender gets no copy of its own messages).
  senderStream?.on('message', (data: Buffer) => {
    unanswered--
    if (data.indexOf('"type":"sent"') < 0) fail(`send: ${data.toString('utf8', 0, 300)}`)
  })
  senderStream?.on('close', (code) => fail(`sender stream closed (${code})`))
  senderStream?.on('error', (err) => fail(`sender: ${err.message}`))

  sockets.forEach((socket, m) => {
    let lastGroupSeq = -1
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (stopped) return
      const field = isBinary ? -1 : data.indexOf(MESSAGE_FIELD)
      const end = field < 0 ? -1 : data.indexOf(0x22, field + MESSAGE_FIELD.length)
      if (end < 0) return fail(`member ${m}: not a delivery: ${data.toString('utf8', 0, 200)}`)
      const groupSeq = readNumber(data, data.indexOf(GROUP_SEQ_FIELD) + GROUP_SEQ_FIELD.length)
      if (lastGroupSeq >= 0 && groupSeq !== lastGroupSeq + 1) fail(`member ${m}: group_seq ${groupSeq} after ${lastGroupSeq}`)
      lastGroupSeq = groupSeq
      deliveries++
      const key = data.toString('latin1', end - TAIL, end)
      const entry = pending.get(key)
      if (!entry) return fail(`member ${m}: a delivery that was not published (…${key})`)
      if (--entry.left > 0) return
      pending.delete(key)
      latencies.push(performance.now() - entry.sentAt)
      publish()
    })
    socket.on('close', (code) => fail(`member ${m}: stream closed (${code})`))
    socket.on('error', (err) => fail(`member ${m}: ${err.message}`))
  })

  const start = performance.now()
  for (let i = 0; i < job.window; i++) publish()
  await new Promise((r) => setTimeout(r, job.seconds * 1000))
  const seconds = (performance.now() - start) / 1000
  stopped = true
  const deadline = Date.now() + 30_000
  while (unanswered > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  for (const socket of [...sockets, ...(senderStream ? [senderStream] : [])]) socket.terminate()
  agent.destroy()
  return { ok: deliveries, failed, seconds, perSecond: deliveries / seconds, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), firstError }
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

/** The decimal integer at data[at] (-1 when there is none). */
function readNumber(data: Buffer, at: number): number {
  let value = -1
  for (let i = at; i < data.length; i++) {
    const digit = (data[i] as number) - 0x30
    if (digit < 0 || digit > 9) break
    value = (value < 0 ? 0 : value * 10) + digit
  }
  return value
}
