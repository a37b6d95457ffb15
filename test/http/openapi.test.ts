import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { generateOpenApi, OPENAPI_PATH } from '../../scripts/openapi.js'

type Operation = { summary?: string; tags?: string[]; responses: Record<string, unknown> }

test('openapi/openapi.json is exactly what the app generates (run `npm run openapi`)', async () => {
  const committed = await readFile(OPENAPI_PATH, 'utf8')
  assert.equal(committed, await generateOpenApi(), 'openapi/openapi.json is stale: run `npm run openapi` and commit it')
})

test('every operation has a summary, tags, and declares its error statuses', async () => {
  const spec = JSON.parse(await generateOpenApi()) as { paths: Record<string, Record<string, Operation>> }
  const operations = Object.entries(spec.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })))
  assert.ok(operations.length >= 12, `only ${operations.length} operations`)
  for (const { path, method, op } of operations) {
    const name = `${method.toUpperCase()} ${path}`
    assert.ok(op.summary, `${name} has no summary`)
    assert.ok(op.tags?.length, `${name} has no tags`)
    if (path.includes('{')) assert.ok(op.responses['400'], `${name} does not declare 400`)
  }
  assert.ok(spec.paths['/groups/{group}/messages']?.post?.responses['403'])
  assert.ok(spec.paths['/groups/{group}/messages']?.post?.responses['413'])
  assert.ok(spec.paths['/groups']?.post?.responses['409'])
})
