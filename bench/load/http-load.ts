import autocannon from 'autocannon'
import type { HttpJob, LoadResult } from './jobs.js'
import { restBody } from './variants.js'

/** HTTP load with autocannon; a dynamic request (setupRequest) only when paths or bodies vary. */
export async function runHttp(job: HttpJob): Promise<LoadResult> {
  const headers = job.bodies || job.relay ? { ...job.headers, 'content-type': 'application/json' } : job.headers
  const original = job.relay ? Buffer.from(job.relay.message, 'base64') : undefined
  const firstCopy = job.firstCopy ?? 0
  const body = (i: number) => (job.relay ? restBody(job.relay, original!, firstCopy + i) : job.bodies?.[i % job.bodies.length])
  const dynamic = job.paths.length > 1 || (job.bodies?.length ?? 0) > 1 || job.relay !== undefined
  let next = 0
  let firstError: string | undefined
  const request = dynamic
    ? {
        setupRequest: (req: autocannon.Request) => {
          const i = next++
          return { ...req, path: job.paths[i % job.paths.length]!, body: body(i) }
        },
      }
    : { path: job.paths[0]!, body: job.bodies?.[0] }
  let finish!: (r: autocannon.Result) => void
  let fail!: (e: Error) => void
  const finished = new Promise<autocannon.Result>((resolve, reject) => { finish = resolve; fail = reject })
  const started = performance.now()
  let responses = 0
  let lastResponseAt = started
  const instance = autocannon({
    url: job.url,
    // autocannon refuses more connections than requests.
    connections: Math.min(job.connections, job.amount ?? job.connections),
    // It notices the end of an `amount` run only at a sample tick: keep ticks short.
    sampleInt: job.amount !== undefined ? 50 : 1000,
    method: job.method,
    headers,
    requests: [request as autocannon.Request],
    ...(job.amount !== undefined ? { amount: job.amount } : { duration: job.seconds ?? 1 }),
  }, (err, result) => (err ? fail(err as Error) : finish(result)))
  instance.on('response', (_client: unknown, status: number) => {
    responses++
    lastResponseAt = performance.now()
    if (status >= 300 && firstError === undefined) firstError = `HTTP ${status}`
  })
  instance.on('reqError', (err: Error) => {
    firstError ??= err.message
  })
  const result = await finished
  const ok = result['2xx']
  // For an `amount` run, time it to its last answer, not to autocannon's next tick.
  const seconds = job.amount !== undefined && responses > 0 ? (lastResponseAt - started) / 1000 : result.duration
  return {
    ok,
    failed: result.non2xx + result.errors + result.timeouts,
    seconds,
    perSecond: ok / seconds,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    firstError,
  }
}
