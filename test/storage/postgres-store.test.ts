import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { PostgresStore } from '../../src/storage/postgres-store.js'
import { MIGRATIONS } from '../../src/storage/postgres/migrations.js'
import { startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { storeContract } from './store-contract.js'

let db: TestPostgres
before(async () => {
  db = await startPostgres()
})
after(() => db?.close())

// Each store gets a schema of its own: a fresh, empty database for every test.
let schemas = 0
storeContract((options) => PostgresStore.open({ connectionString: db.url, poolSize: 10, schema: `contract_${++schemas}`, ...options }))

describe('PostgreSQL specifics', () => {
  test('migrations are versioned and applied once, even by instances starting at the same time', async () => {
    const stores = await Promise.all([1, 2, 3].map(() => PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'racing' })))
    await Promise.all(stores.map((s) => s.close()))
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    try {
      const { rows } = await client.query('SELECT version FROM racing.schema_migrations ORDER BY version')
      assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((m) => m.version))
    } finally {
      await client.end()
    }
  })

  test('state outlives the store: a new pool on the same schema sees everything', async () => {
    const first = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'durable' })
    await first.createGroup({ groupId: 'g', creatorId: 'a', epoch: 0, createdAt: 1 })
    await first.addMember('g', 'b')
    await first.appendMessage('g', { senderId: 'a', messageType: 'Application', data: new Uint8Array([1, 2, 3]), receivedAt: 1, epoch: null, contentType: null }, { senderMustBeMember: true })
    await first.close()
    const second = await PostgresStore.open({ connectionString: db.url, poolSize: 2, schema: 'durable' })
    try {
      assert.deepEqual((await second.readMessages('g', 0, 10))?.map((m) => [...m.data]), [[1, 2, 3]])
      assert.equal((await second.readDeliveries('b', 0, 10, 1)).lastSeq, 1)
    } finally {
      await second.close()
    }
  })
})
