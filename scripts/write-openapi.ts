import { mkdir, writeFile } from 'node:fs/promises'
import { generateOpenApi, OPENAPI_PATH } from './openapi.js'

/** `npm run openapi`: writes the document the app generates from its route schemas. */
await mkdir('openapi', { recursive: true })
await writeFile(OPENAPI_PATH, await generateOpenApi())
process.stdout.write(`wrote ${OPENAPI_PATH}\n`)
