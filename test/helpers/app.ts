import { pino } from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { MemoryStore } from '../../src/storage/memory-store.js'

export const silentLogger = pino({ level: 'silent' })

/** The REST app over a fresh memory store, for app.inject tests. */
export async function buildTestApp(overrides: Partial<Config> = {}): Promise<{ app: FastifyInstance; service: DeliveryService }> {
  const config = { ...testConfig(), ...overrides }
  const service = new DeliveryService({ store: new MemoryStore(), log: silentLogger })
  const app = await buildApp({ config, service, logger: silentLogger })
  await app.ready()
  return { app, service }
}

export function testConfig(): Config {
  const config = loadConfig({ HTTP_PORT: '0', TCP_PORT: '0', LOG_LEVEL: 'silent' }, [])
  if ('help' in config) throw new Error('unreachable')
  return config
}
