import { pino } from 'pino'
import { buildApp } from '../src/app.js'
import { DeliveryService } from '../src/service/delivery-service.js'
import { MemoryStore } from '../src/storage/memory-store.js'

export const OPENAPI_PATH = 'openapi/openapi.json'

/** The OpenAPI document as the app generates it, pretty-printed with a final newline. */
export async function generateOpenApi(): Promise<string> {
  const logger = pino({ level: 'silent' })
  const app = await buildApp({ config: { maxMessageBytes: 1024 * 1024, mlsValidation: 'strict' }, service: new DeliveryService({ store: new MemoryStore(), log: logger }), logger })
  await app.ready()
  const document = app.swagger()
  await app.close()
  return `${JSON.stringify(document, null, 2)}\n`
}
