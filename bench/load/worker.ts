/**
 * The load-generator process: the harness forks it once and sends it jobs over IPC, so
 * load is generated in a process of its own, never in the server's or the harness's.
 */
import { runHttp } from './http-load.js'
import type { LoadJob, LoadResult } from './jobs.js'
import { runStream } from './stream-load.js'
import { runTcp } from './tcp-load.js'
import { runWs } from './ws-load.js'

function runJob(job: LoadJob): Promise<LoadResult> {
  switch (job.kind) {
    case 'http': return runHttp(job)
    case 'tcp': return runTcp(job)
    case 'ws': return runWs(job)
    case 'stream': return runStream(job)
  }
}

process.on('message', (message: { id: number; job: LoadJob }) => {
  runJob(message.job).then(
    (result) => process.send!({ id: message.id, result }),
    (err: unknown) => process.send!({ id: message.id, error: (err as Error).stack ?? String(err) }),
  )
})
process.on('disconnect', () => process.exit(0))
