import { pino } from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp, type AppOptions } from '../../src/app.js'
import { loadConfig, type Config } from '../../src/config.js'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { createBackend } from '../../src/storage/index.js'
import { testStoreConfig } from './test-store.js'

export const silentLogger = pino({ level: 'silent' })

/**
 * The REST app over a fresh store of the TEST_STORE backend (memory by default), for app.inject
 * tests. The store and its bus are chosen as the runtime chooses them, and close with the app.
 */
export async function buildTestApp(overrides: Partial<Config> = {}, appOptions: Pick<AppOptions, 'tls' | 'tlsHandshakeTimeoutMs'> = {}): Promise<{ app: FastifyInstance; service: DeliveryService }> {
  const config = { ...testConfig(), ...(await testStoreConfig(overrides)), ...overrides }
  const backend = await createBackend(config, silentLogger)
  const service = new DeliveryService({ store: backend.store, bus: backend.bus, log: silentLogger, pageMaxBytes: config.maxMessageBytes })
  let app: FastifyInstance
  try {
    app = await buildApp({ config, service, logger: silentLogger, ...appOptions })
    // After the server has stopped and requests in flight are done, as runtime.ts closes it.
    app.addHook('onClose', () => backend.close())
    await app.ready()
  } catch (err) {
    await backend.close()
    throw err
  }
  return { app, service }
}

export function testConfig(): Config {
  const config = loadConfig({ HTTP_PORT: '0', TCP_PORT: '0', LOG_LEVEL: 'silent' }, [])
  if ('help' in config) throw new Error('unreachable')
  return config
}
