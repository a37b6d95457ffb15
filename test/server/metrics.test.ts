import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { RestApi } from '../helpers/rest-api.js'
import { startTestService, useTestService } from '../helpers/service.js'
import { StreamClient } from '../helpers/stream-client.js'
import { connect, LineReader } from '../tcp/helpers.js'

/** GET /metrics as text, with its content type. */
async function scrape(api: RestApi): Promise<{ type: string | null; text: string }> {
  const res = await fetch(`${api.base}/metrics`)
  assert.equal(res.status, 200)
  return { type: res.headers.get('content-type'), text: await res.text() }
}

/** The value of one series (`name{labels}` exactly as exposed); 0 when it has not been counted. */
function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.fail(`timed out waiting for ${what}`)
}

describe('GET /metrics: one set of counters for both doors and the streams (real HTTP, TCP, WebSocket, MLS)', () => {
  const service = useTestService()

  test('counts what each door did into the same series', async () => {
    const before = (await scrape(service.api)).text
    const count = (text: string, series: string) => value(text, series) - value(before, series)

    // REST: an MLS application message to a group of two (one delivery), then its retry.
    const alice = await MlsTestClient.create('alice', 1)
    await alice.createGroup('metrics-g')
    assert.equal((await service.api.createGroup('metrics-g', 'alice')).status, 201)
    assert.equal((await service.api.call('POST', '/groups/metrics-g/members', { client_id: 'bob' })).status, 200)
    const message = await alice.sendApplication('hello')
    assert.equal((await service.api.send('metrics-g', 'alice', message)).status, 201)
    assert.equal((await service.api.send('metrics-g', 'alice', message)).body.seq, 1, 'the retry gets the original seq')
    assert.equal((await service.api.call('GET', '/groups/no-such-group')).status, 404)

    // TCP: opaque bytes (permissive there by default), a KeyPackage claim on an empty pool, and nonsense.
    const socket = await connect(service.running.tcpPort!)
    const lines = new LineReader(socket)
    socket.write('{"type":"RelayMessage","group_id":"metrics-g","sender_id":"bob","message":[1,2,3],"message_type":"Application"}\n')
    assert.equal((await lines.next()).type, 'MessageResponse')
    socket.write('{"type":"FetchKeyPackage","client_id":"nobody"}\n')
    assert.equal((await lines.next()).key_package, null)
    socket.write('{"type":"Nonsense"}\n')
    assert.equal((await lines.next()).type, 'Error')
    socket.end()

    // REST again: a real KeyPackage stored, then claimed.
    const carol = await MlsTestClient.create('carol', 1)
    assert.equal((await service.api.putKeyPackages('carol', [(await carol.createKeyPackage()).bytes])).status, 200)
    assert.equal((await service.api.claim('carol')).status, 200)

    // A WebSocket stream, a frame it refuses, and its end.
    const stream = await StreamClient.connect(service.running.httpPort, 'bob')
    await until(async () => count((await scrape(service.api)).text, 'mlsds_streams_open') === 1, 'the stream to count')
    stream.socket.send('not json')
    await until(async () => count((await scrape(service.api)).text, 'mlsds_requests_rejected_total{door="stream",error="bad_request"}') === 1, 'the refused frame')
    stream.socket.close()
    await until(async () => count((await scrape(service.api)).text, 'mlsds_streams_open') === 0, 'the stream to end')

    const { type, text } = await scrape(service.api)
    assert.match(type ?? '', /^text\/plain; version=0\.0\.4/)
    const expected: Record<string, number> = {
      'mlsds_messages_accepted_total{content_type="application"}': 1,
      'mlsds_messages_accepted_total{content_type="opaque"}': 1,
      'mlsds_messages_accepted_total{content_type="commit"}': 0,
      mlsds_messages_retried_total: 1,
      // bob got alice's message, alice got bob's.
      mlsds_deliveries_queued_total: 2,
      mlsds_key_packages_stored_total: 1,
      'mlsds_key_package_claims_total{outcome="claimed"}': 1,
      'mlsds_key_package_claims_total{outcome="none"}': 1,
      'mlsds_groups_total{event="created"}': 1,
      'mlsds_requests_rejected_total{door="rest",error="group_not_found"}': 1,
      'mlsds_requests_rejected_total{door="tcp",error="bad_request"}': 1,
      'mlsds_requests_rejected_total{door="stream",error="bad_request"}': 1,
    }
    for (const [series, n] of Object.entries(expected)) assert.equal(count(text, series), n, series)

    assert.equal((await service.api.call('DELETE', '/groups/metrics-g')).status, 204)
    assert.equal(count((await scrape(service.api)).text, 'mlsds_groups_total{event="deleted"}'), 1)
  })

  test('the process metrics are there too', async () => {
    const { text } = await scrape(service.api)
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']) {
      assert.ok(text.includes(`\n${name} `) || text.includes(`\n${name}{`), name)
    }
  })
})

describe('METRICS=false', () => {
  let running: RunningService
  before(async () => {
    running = await startTestService({ metrics: false })
  })
  after(() => running.close())

  test('GET /metrics is a 404 in the usual shape', async () => {
    const res = await fetch(`http://127.0.0.1:${running.httpPort}/metrics`)
    assert.equal(res.status, 404)
    assert.equal((await res.json() as { error: string }).error, 'not_found')
  })
})
