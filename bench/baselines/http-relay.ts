/**
 * Baseline for relay over REST: a bare Fastify route that parses the same JSON body,
 * decodes nothing, appends to an in-memory array and answers {seq}. No logging, no schema.
 * `--busy-us=N` (for the relay-rest-cost calibration only) adds N µs of busy CPU per request.
 */
import Fastify from 'fastify'

const busyMs = Number(process.argv.find((a) => a.startsWith('--busy-us='))?.slice('--busy-us='.length) ?? 0) / 1000
const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 })
let messages: unknown[] = []

app.post('/groups/:group/messages', async (request, reply) => {
  if (busyMs > 0) for (const start = performance.now(); performance.now() - start < busyMs;);
  messages.push({ group: (request.params as { group: string }).group, body: request.body, receivedAt: Date.now() })
  return reply.status(201).send({ seq: messages.length })
})
app.delete('/reset', async (_request, reply) => {
  messages = []
  return reply.status(204).send()
})

await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
process.stdout.write(`READY ${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`)
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)))
