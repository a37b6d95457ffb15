import net from 'node:net'
import { percentile } from '../lib/stats.js'
import type { LoadResult, TcpJob } from './jobs.js'
import { tcpLine } from './variants.js'

/**
 * Newline-JSON load: each connection keeps `inFlight` requests outstanding and sends the
 * next one as each answer arrives. Latency is per request, from write to its answer line.
 */
export async function runTcp(job: TcpJob): Promise<LoadResult> {
  const fixed = job.line === undefined ? undefined : Buffer.from(`${job.line}\n`)
  const original = job.relay ? Buffer.from(job.relay.message, 'base64') : undefined
  const payload = (i: number) => fixed ?? `${tcpLine(job.relay!, original!, i)}\n`
  const latencies: number[] = []
  let ok = 0
  let failed = 0
  let sent = 0
  let firstError: string | undefined
  let stopped = false
  const start = performance.now()
  const canSend = () => !stopped && (job.amount === undefined || sent < job.amount)

  const sockets = await Promise.all(Array.from({ length: job.connections }, () => connect(job.port)))
  const done = sockets.map((socket) => new Promise<void>((resolve) => {
    const sentAt: number[] = []
    let head = 0
    let partial = ''
    const send = () => {
      const line = payload(sent++)
      sentAt.push(performance.now())
      socket.write(line)
    }
    socket.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n')
      partial = lines.pop()!
      const now = performance.now()
      for (const line of lines) {
        const t = sentAt[head++]!
        if (stopped) continue
        if (line.startsWith(job.okPrefix)) {
          ok++
          latencies.push(now - t)
        } else {
          failed++
          firstError ??= line.slice(0, 200)
        }
        if (canSend()) send()
      }
      if (head > 4096) {
        sentAt.splice(0, head)
        head = 0
      }
      if (head === sentAt.length && (stopped || !canSend())) resolve()
    })
    socket.on('error', (err) => {
      failed++
      firstError ??= err.message
      resolve()
    })
    socket.on('close', () => resolve())
    for (let i = 0; i < job.inFlight && canSend(); i++) send()
    // With an `amount` smaller than connections × inFlight, some connections send nothing.
    if (sentAt.length === 0) resolve()
  }))

  let timer: NodeJS.Timeout | undefined
  const finished = Promise.all(done)
  if (job.seconds !== undefined) {
    await Promise.race([finished, new Promise((r) => { timer = setTimeout(r, job.seconds! * 1000) })])
    stopped = true
  } else {
    await finished
  }
  clearTimeout(timer)
  const seconds = (performance.now() - start) / 1000
  for (const socket of sockets) socket.destroy()
  return { ok, failed, seconds, perSecond: ok / seconds, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), firstError }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(socket))
    socket.once('error', reject)
  })
}
