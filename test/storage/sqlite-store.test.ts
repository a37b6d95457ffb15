import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { SqliteStore } from '../../src/storage/sqlite-store.js'
import { storeContract } from './store-contract.js'

const dir = mkdtempSync(join(tmpdir(), 'mlsds-sqlite-'))
after(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
storeContract(async (options) => SqliteStore.open({ path: join(dir, `contract-${++files}.sqlite`), ...options }))

describe('SQLite specifics', () => {
  test('state outlives the process: reopening the file sees everything, migrations are not applied twice', async () => {
    const path = join(dir, 'durable.sqlite')
    const first = SqliteStore.open({ path })
    await first.createGroup({ groupId: 'g', creatorId: 'a', epoch: 0, createdAt: 1 })
    await first.addMember('g', 'b')
    await first.appendMessage('g', { senderId: 'a', messageType: 'Application', data: new Uint8Array([1, 2, 3]), receivedAt: 1, epoch: null, contentType: null }, { senderMustBeMember: true })
    await first.close()
    const second = SqliteStore.open({ path })
    try {
      assert.deepEqual((await second.readMessages('g', 0, 10))?.map((m) => [...m.data]), [[1, 2, 3]])
      assert.equal((await second.readDeliveries('b', 0, 10, 1)).lastSeq, 1)
    } finally {
      await second.close()
    }
  })
})

describe('STORE=sqlite', () => {
  test('the service runs on the file and keeps its state across a restart', async () => {
    const { startTestService } = await import('../helpers/service.js')
    const { RestApi } = await import('../helpers/rest-api.js')
    const config = { store: 'sqlite', sqlitePath: join(dir, 'service.sqlite'), mlsValidation: 'permissive' } as const
    let running = await startTestService(config)
    let api = new RestApi(running.httpPort)
    assert.deepEqual((await api.call('GET', '/health')).body, { status: 'ok', store: 'sqlite' })
    assert.equal((await api.call('GET', '/ready')).status, 200)
    assert.equal((await api.createGroup('g', 'alice')).status, 201)
    assert.equal((await api.send('g', 'alice', new Uint8Array([1, 2, 3]), 'Application')).status, 201)
    await running.close()
    running = await startTestService(config)
    api = new RestApi(running.httpPort)
    try {
      assert.equal((await api.messages('g')).length, 1)
    } finally {
      await running.close()
    }
  })
})
