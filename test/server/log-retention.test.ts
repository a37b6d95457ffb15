import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { LogRetention } from '../../src/service/log-retention.js'
import { StoreUnavailableError } from '../../src/storage/errors.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { SqliteStore } from '../../src/storage/sqlite-store.js'
import { silentLogger } from '../helpers/app.js'
import { type Body } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { TcpApi } from '../tcp/tcp-api.js'

const SECOND = 1000
const T0 = 1_700_000_000_000

/** A log that keeps what is written to it, to read the warnings. */
function recordingLogger() {
  const lines: Array<{ level: number; msg: string }> = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(JSON.parse(line)) })
  return { logger, lines }
}

describe('LogRetention: the sweeper of GROUP_LOG_MAX_AGE', () => {
  test('a sweep drops what is older than the age from every group, batch after batch, and counts it', async () => {
    // SQLite drops 1,000 messages a batch: 2,500 old ones take three batches and a last empty one.
    const store = SqliteStore.open({ path: ':memory:' })
    try {
      await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: T0 })
      for (let i = 0; i < 2600; i++) {
        await store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: Buffer.from(`m${i}`), receivedAt: T0 + i, epoch: null, contentType: null }, { senderMustBeMember: true })
      }
      const counted: number[] = []
      const calls: number[] = []
      const retention = new LogRetention({
        store: { purgeGroupLogs: (before) => (calls.push(before), store.purgeGroupLogs(before)) },
        maxAgeMs: 60 * SECOND,
        now: () => T0 + 60 * SECOND + 2500,
        log: silentLogger,
        counts: { groupLogMessagesDropped: (n) => counted.push(n) },
      })
      assert.equal(await retention.sweep(), 2500)
      assert.deepEqual(counted, [1000, 1000, 500])
      assert.deepEqual(calls, [T0 + 2500, T0 + 2500, T0 + 2500, T0 + 2500], 'one cut-off per sweep: the age before its start')
      assert.equal((await store.readMessages('g', 0, 1000))?.firstSeq, 2501)
      assert.equal(await retention.sweep(), 0)
      await retention.stop()
    } finally {
      await store.close()
    }
  })

  test('a store that cannot be reached is logged, and the next sweep tries again; a stopped sweeper sweeps no more', async () => {
    const { logger, lines } = recordingLogger()
    let down = true
    const store = new MemoryStore()
    await store.createGroup({ groupId: 'g', creatorId: 'alice', epoch: 0, createdAt: T0 })
    await store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: Buffer.from('old'), receivedAt: T0, epoch: null, contentType: null }, { senderMustBeMember: true })
    const retention = new LogRetention({
      store: { purgeGroupLogs: (before) => (down ? Promise.reject(new StoreUnavailableError('connection refused')) : store.purgeGroupLogs(before)) },
      maxAgeMs: SECOND,
      now: () => T0 + 10 * SECOND,
      log: logger,
      counts: { groupLogMessagesDropped: () => {} },
    })
    assert.equal(await retention.sweep(), 0)
    assert.ok(lines.some((l) => l.level === 40 && /the store did not answer/.test(l.msg)), JSON.stringify(lines))
    down = false
    assert.equal(await retention.sweep(), 1)
    await retention.stop()
    await store.appendMessage('g', { senderId: 'alice', messageType: 'Application', data: Buffer.from('old too'), receivedAt: T0, epoch: null, contentType: null }, { senderMustBeMember: true })
    assert.equal(await retention.sweep(), 0, 'stopped')
    assert.equal((await store.readMessages('g', 0, 10))?.messages.length, 1)
  })
})

describe('GROUP_LOG_MAX_AGE on a running service: old messages leave the log, and readers are told', () => {
  // The smallest ages the settings allow: the log's at least the queues' and the retry window.
  const service = useTestService({ mlsValidation: 'permissive', groupLogMaxAgeSeconds: 1, idempotencyWindowSeconds: 1, queueMaxAgeSeconds: 1 })

  test('both doors report the gap; a member\'s queue reports its own', async () => {
    const { api } = service
    assert.equal((await api.createGroup('aging', 'alice')).status, 201)
    assert.equal((await api.call('POST', '/groups/aging/members', { client_id: 'bob' })).status, 200)
    for (const text of ['one', 'two']) assert.equal((await api.send('aging', 'alice', Buffer.from(text), 'Application')).status, 201)
    const fresh = await api.call('GET', '/groups/aging/messages?after=0')
    assert.deepEqual(fresh.body.messages.map((m: Body) => m.seq), [1, 2])
    assert.equal(fresh.body.gap, undefined)

    // Swept within the age plus one interval (1 s each here).
    let page = fresh
    for (let i = 0; i < 300 && page.body.messages.length > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      page = await api.call('GET', '/groups/aging/messages?after=0')
    }
    assert.deepEqual(page.body, { group_id: 'aging', messages: [], gap: { missed_from: 1, first_available_seq: 3 } })
    assert.equal((await api.send('aging', 'alice', Buffer.from('three'), 'Application')).status, 201)
    const later = await api.call('GET', '/groups/aging/messages?after=1')
    assert.deepEqual(later.body.gap, { missed_from: 2, first_available_seq: 3 })
    assert.deepEqual(later.body.messages.map((m: Body) => [m.seq, Buffer.from(m.message, 'base64').toString()]), [[3, 'three']])
    assert.equal((await api.call('GET', '/groups/aging/messages?after=2')).body.gap, undefined, 'a reader that had everything missed nothing')

    const tcp = await TcpApi.connect(service.running.tcpPort!)
    try {
      const overTcp = await tcp.call({ type: 'ReadMessages', group_id: 'aging', after: 0 })
      assert.deepEqual([overTcp.type, overTcp.gap, overTcp.messages.map((m: Body) => m.seq)], ['MessagesResponse', { missed_from: 1, first_available_seq: 3 }, [3]])
    } finally {
      tcp.close()
    }
    // Bob read nothing: his queue (1 s too) has dropped the first two, and says so.
    const queue = await api.call('GET', '/clients/bob/messages?after=0')
    assert.equal(queue.body.gap?.missed_from, 1)
    assert.ok(queue.body.gap.first_available_seq >= 3, JSON.stringify(queue.body))
    assert.ok(!queue.body.deliveries.some((d: Body) => ['one', 'two'].includes(Buffer.from(d.message, 'base64').toString())))
    assert.equal((await api.group('aging')).next_seq, 4)
    const metrics = await (await fetch(`${api.base}/metrics`)).text()
    assert.match(metrics, /^mlsds_group_log_messages_dropped_total [2-9]\d*$/m)
  })
})
