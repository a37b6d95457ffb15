import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { test } from 'node:test'
import { RestApi } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { assertGapFree, StreamClient } from '../helpers/stream-client.js'

const text64 = (text: string) => Buffer.from(text).toString('base64')

test('a consumer that reads nothing is cut off with close code 4008, the server stops buffering for it, and it resumes from its cursor', async () => {
  const maxBuffered = 64 * 1024
  const running = await startTestService({ mlsValidation: 'permissive', streamMaxBufferedBytes: maxBuffered, streamStallTimeoutSeconds: 1 })
  try {
    const api = new RestApi(running.httpPort)
    await api.call('POST', '/groups', { group_id: 'firehose', creator_id: 'fast' })
    await api.call('POST', '/groups/firehose/members', { client_id: 'sloth' })

    const sloth = await StreamClient.connect(running.httpPort, 'sloth')
    const raw = (sloth.socket as unknown as { _socket: Socket })._socket
    raw.pause() // reads nothing from now on

    const total = 2500
    const payload = 'x'.repeat(4000)
    for (let i = 0; i < total; i++) {
      const res = await api.call('POST', '/groups/firehose/messages', { sender_id: 'fast', message: text64(`${i}:${payload}`), message_type: 'Application' })
      assert.equal(res.status, 201)
    }
    // ~13 MB of frames were due; the server must have stopped at its buffer limit, not queued them all.
    await new Promise((r) => setTimeout(r, 1500))
    raw.resume()
    await sloth.waitFor(() => sloth.closeCode !== undefined, 'the close')
    assert.equal(sloth.closeCode, 4008)
    const before = sloth.deliveries.length
    assert.ok(before < total, `the slow consumer was sent everything (${before}) instead of being cut off`)
    assert.equal(assertGapFree(sloth.deliveries.map((d) => d.seq!)), undefined)

    // Resume from the cursor: everything else arrives, exactly once, in order.
    const resumed = await StreamClient.connect(running.httpPort, 'sloth', sloth.lastSeq)
    await resumed.waitFor(() => resumed.lastSeq >= total, 'the rest', 60_000)
    const all = [...sloth.deliveries, ...resumed.deliveries]
    assert.equal(all.length, total)
    assert.equal(assertGapFree(all.map((d) => d.seq!)), undefined)
    assert.deepEqual(all.map((d) => Number(Buffer.from(String(d.message), 'base64').toString().split(':')[0])), Array.from({ length: total }, (_, i) => i))
    await resumed.close()
  } finally {
    await running.close()
  }
})

test('a peer that stops answering keep-alive pings is dropped', async () => {
  const running = await startTestService({ streamPingIntervalSeconds: 1 })
  try {
    const idle = await StreamClient.connect(running.httpPort, 'ghost')
    const raw = (idle.socket as unknown as { _socket: Socket })._socket
    raw.pause() // a dead peer: no pongs
    const lively = await StreamClient.connect(running.httpPort, 'alive')
    await new Promise((r) => setTimeout(r, 3500))
    raw.resume()
    await idle.waitFor(() => idle.closeCode !== undefined, 'the dead peer to be dropped')
    assert.ok(idle.closeCode === 4000 || idle.closeCode === 1006, `close code ${idle.closeCode}`)
    // A peer that answers pings (ws does so by itself) stays connected.
    assert.equal(lively.closeCode, undefined)
    await lively.close()
  } finally {
    await running.close()
  }
})
