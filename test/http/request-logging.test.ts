import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { buildApp } from '../../src/app.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { createBackend } from '../../src/storage/index.js'
import { testConfig } from '../helpers/app.js'

test('requests are logged at info (with their reqId), not above it, following the level as it changes', async (t) => {
  const lines: Array<{ msg: string; reqId?: string; level: number }> = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) })
  const config = testConfig()
  const backend = await createBackend({ ...config, store: 'memory' }, logger)
  const app = await buildApp({ config, service: new DeliveryService({ store: backend.store, bus: backend.bus, log: logger }), logger })
  t.after(async () => {
    await app.close()
    await backend.close()
  })
  const requestLines = () => lines.filter((l) => l.msg === 'incoming request' || l.msg === 'request completed')

  assert.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200)
  const first = requestLines()
  assert.deepEqual(first.map((l) => l.msg), ['incoming request', 'request completed'])
  assert.ok(first[0]!.reqId && first[0]!.reqId === first[1]!.reqId)

  logger.level = 'warn'
  await app.inject({ method: 'GET', url: '/health' })
  assert.equal(requestLines().length, 2)

  logger.level = 'info'
  await app.inject({ method: 'GET', url: '/health' })
  assert.equal(requestLines().length, 4)
})
