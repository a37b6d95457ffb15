import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { OPTIONS } from '../../src/config.js'

test('README and .env.example document every setting with its default', async () => {
  const readme = await readFile('README.md', 'utf8')
  const envExample = await readFile('.env.example', 'utf8')
  for (const o of OPTIONS) {
    assert.ok(readme.includes(`| \`${o.env}\` | \`--${o.flag}\` | \`${o.default}\` |`), `README's configuration table lacks ${o.env} (--${o.flag}, default ${o.default})`)
    assert.ok(envExample.includes(`\n${o.env}=${o.default}\n`), `.env.example lacks ${o.env}=${o.default}`)
  }
})
