import { pino } from 'pino'
import { buildApp } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'
import { DeliveryService } from '../src/service/delivery-service.js'
import { MemoryStore } from '../src/storage/memory-store.js'

export const OPENAPI_PATH = 'openapi/openapi.json'

/** The OpenAPI document as the app generates it, pretty-printed with a final newline. */
export async function generateOpenApi(): Promise<string> {
  const logger = pino({ level: 'silent' })
  const app = await buildApp({ config: { ...defaultConfig(), maxMessageBytes: 1024 * 1024 }, service: new DeliveryService({ store: new MemoryStore(), log: logger }), logger })
  await app.ready()
  const document = app.swagger()
  await app.close()
  return `${JSON.stringify(document, null, 2)}\n`
}

/** The documented defaults, whatever the environment says. */
function defaultConfig(): Config {
  const config = loadConfig({}, [])
  if ('help' in config) throw new Error('unreachable')
  return config
}
