import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, describe, test } from 'node:test'
import { MlsTestClient } from '../helpers/mls-client.js'
import { PushGateway } from '../helpers/push-gateway.js'
import { RestMember, unb64 } from '../helpers/rest-api.js'
import { startTestService, useTestService } from '../helpers/service.js'
import { StreamClient } from '../helpers/stream-client.js'
import { TcpApi, bytes } from '../tcp/tcp-api.js'
import { until } from '../helpers/until.js'

/**
 * PUSH_WEBHOOK_URL end to end: the real service (both doors, the TEST_STORE backend), real
 * ts-mls clients, and an app's push gateway that verifies every call with the standardwebhooks
 * library. Clients without a live stream are told when their queue grows, never what came.
 */
const gateway = await PushGateway.start()
after(() => gateway.close())

describe('push notifications through the webhook', () => {
  // Every turn with deliveries is told, so each step below is one call.
  const service = useTestService({ pushWebhookUrl: gateway.url, pushWebhookSecret: PushGateway.SECRET, pushMinIntervalSeconds: 0 })

  test('Welcome recipients and offline members are told; a member with a live stream is not; the told client finds its deliveries', async () => {
    const group = 'push-team'
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map(async (name) =>
      new RestMember(await MlsTestClient.create(name), service.api, group)))
    for (const m of [bob!, carol!]) assert.equal((await service.api.putKeyPackages(m.name, [(await m.client.createKeyPackage()).bytes])).status, 200)
    await alice!.client.createGroup(group)
    assert.equal((await service.api.createGroup(group, 'alice')).status, 201)
    const from = gateway.calls.length
    const add = await alice!.client.addMembers([await service.api.claimBytes('bob'), await service.api.claimBytes('carol')])
    assert.equal((await alice!.commit(add)).status, 201)
    await gateway.waitForCalls(from + 1)
    assert.deepEqual(gateway.calls.slice(from).map((c) => [...c.clients].sort()), [['bob', 'carol']], 'the Welcome\'s recipients, not its sender')
    assert.ok(gateway.calls.every((c) => c.verified), 'every call verifies')
    assert.deepEqual(gateway.calls[from]!.body, { type: 'deliveries', clients: gateway.calls[from]!.clients }, 'who, never what')

    // Bob listens on a stream; Carol is offline.
    await bob!.joinFromInbox()
    const stream = await StreamClient.connect(service.running.httpPort, 'bob')
    after(() => stream.close())
    await until(() => stream.frames.length >= 1, 'bob\'s stream to replay his Welcome')
    const before = gateway.calls.length
    assert.equal((await alice!.say('hello')).status, 201)
    await gateway.waitForCalls(before + 1)
    await sleep(100)
    assert.deepEqual(gateway.calls.slice(before).map((c) => c.clients), [['carol']], 'bob streams, carol is told')
    await until(() => stream.frames.some((f) => f.message_type === 'Application'), 'bob\'s stream to deliver the message')

    // Woken by the push, Carol reads her queue and decrypts what came.
    const queue = await service.api.call('GET', '/clients/carol/messages?after=0')
    assert.deepEqual(queue.body.deliveries.map((d: { kind: string; message_type: string }) => `${d.kind}/${d.message_type}`), ['welcome/Welcome', 'message/Application'])
    await carol!.client.joinFromWelcome(unb64(queue.body.deliveries[0].message), unb64((await service.api.groupInfo(group)).body.ratchet_tree))
    const received = await carol!.client.receive(unb64(queue.body.deliveries[1].message))
    assert.deepEqual(received.kind === 'application' && received.text, 'hello')

    const metrics = await (await fetch(`${service.api.base}/metrics`)).text()
    assert.match(metrics, /^mlsds_push_clients_total\{result="notified"\} 3$/m)
    assert.match(metrics, /^mlsds_push_clients_total\{result="listening"\} 1$/m)
    assert.match(metrics, /^mlsds_push_webhook_calls_total\{outcome="delivered"\} 2$/m)
  })

  test('a retried message tells nobody again', async () => {
    const group = 'push-retry'
    const [alice, dave] = await Promise.all(['alice', 'dave'].map((name) => MlsTestClient.create(name)))
    assert.equal((await service.api.putKeyPackages('dave', [(await dave!.createKeyPackage()).bytes])).status, 200)
    await alice!.createGroup(group)
    assert.equal((await service.api.createGroup(group, 'alice')).status, 201)
    const add = await alice!.addMembers([await service.api.claimBytes('dave')])
    let from = gateway.calls.length
    assert.equal((await new RestMember(alice!, service.api, group).commit(add)).status, 201)
    await gateway.waitForCalls(from + 1)

    const message = await alice!.sendApplication('once')
    from = gateway.calls.length
    const first = await service.api.send(group, 'alice', message)
    assert.equal(first.status, 201)
    await gateway.waitForCalls(from + 1)
    const retry = await service.api.send(group, 'alice', message)
    assert.equal(retry.body.seq, first.body.seq, 'answered as a retry')
    await sleep(200)
    assert.deepEqual(gateway.calls.slice(from).map((c) => c.clients), [['dave']], 'told once')
  })

  test('a message relayed through the legacy TCP door tells the other members too', async () => {
    const tcp = await TcpApi.connect(service.running.tcpPort!)
    after(() => tcp.close())
    assert.equal((await tcp.createGroup('push-legacy', 'erin')).type, 'GroupResponse')
    assert.equal((await tcp.call({ type: 'JoinGroup', group_id: 'push-legacy', client_id: 'frank' })).type, 'GroupResponse')
    const from = gateway.calls.length
    const answer = await tcp.call({ type: 'RelayMessage', group_id: 'push-legacy', sender_id: 'erin', message: bytes(new TextEncoder().encode('placeholder')), message_type: 'Application' })
    assert.equal(answer.type, 'MessageResponse', JSON.stringify(answer))
    await gateway.waitForCalls(from + 1)
    assert.deepEqual(gateway.calls.slice(from).map((c) => c.clients), [['frank']])
  })
})

describe('push notifications: a client whose stream ends', () => {
  const service = useTestService({ pushWebhookUrl: gateway.url, pushWebhookSecret: PushGateway.SECRET, pushMinIntervalSeconds: 0 })

  test('is told when its connection broke after deliveries it was not told of, not when it closed cleanly', async () => {
    const tcp = await TcpApi.connect(service.running.tcpPort!)
    after(() => tcp.close())
    assert.equal((await tcp.createGroup('push-drop', 'ivan')).type, 'GroupResponse')
    assert.equal((await tcp.call({ type: 'JoinGroup', group_id: 'push-drop', client_id: 'judy' })).type, 'GroupResponse')
    const relay = () => tcp.call({ type: 'RelayMessage', group_id: 'push-drop', sender_id: 'ivan', message: bytes(new TextEncoder().encode('x')), message_type: 'Application' })

    // A clean close (the app closes its socket) after the stream handed everything over: nobody is told.
    let stream = await StreamClient.connect(service.running.httpPort, 'judy')
    const from = gateway.calls.length
    assert.equal((await relay()).type, 'MessageResponse')
    await stream.waitFor(() => stream.deliveries.length === 1, 'the delivery')
    await stream.close()
    await sleep(200)
    assert.deepEqual(gateway.calls.slice(from).map((c) => c.clients), [], 'judy was listening, then left cleanly')

    // The connection breaks with nothing written to it: nothing to tell (an app killed or suspended
    // with nothing new is not woken again and again).
    stream = await StreamClient.connect(service.running.httpPort, 'judy', 1)
    await sleep(100)
    stream.socket.terminate()
    await sleep(300)
    assert.deepEqual(gateway.calls.slice(from).map((c) => c.clients), [])

    // The connection breaks after a delivery was written (a phone losing its network): it may
    // never have arrived, so judy is told.
    stream = await StreamClient.connect(service.running.httpPort, 'judy', 1)
    assert.equal((await relay()).type, 'MessageResponse')
    await stream.waitFor(() => stream.deliveries.length === 1, 'the second delivery')
    stream.socket.terminate()
    await gateway.waitForCalls(from + 1)
    assert.deepEqual(gateway.calls.slice(from).map((c) => c.clients), [['judy']])
  })
})

describe('push notifications: a gateway that fails', () => {
  test('is tried again after its Retry-After, relaying never waits for it, and a stop abandons a call in flight', async () => {
    const running = await startTestService({ pushWebhookUrl: gateway.url, pushWebhookSecret: PushGateway.SECRET, pushMinIntervalSeconds: 0 })
    let stopped = false
    after(() => stopped || running.close())
    const tcp = await TcpApi.connect(running.tcpPort!)
    after(() => tcp.close())
    assert.equal((await tcp.createGroup('push-down', 'gina')).type, 'GroupResponse')
    assert.equal((await tcp.call({ type: 'JoinGroup', group_id: 'push-down', client_id: 'hal' })).type, 'GroupResponse')
    gateway.answerNext({ status: 503, headers: { 'retry-after': '1' } }, 'hang')
    const from = gateway.calls.length
    const started = Date.now()
    const answer = await tcp.call({ type: 'RelayMessage', group_id: 'push-down', sender_id: 'gina', message: bytes(new TextEncoder().encode('x')), message_type: 'Application' })
    assert.equal(answer.type, 'MessageResponse')
    await gateway.waitForCalls(from + 2, 8000)
    const [first, second] = gateway.calls.slice(from)
    assert.deepEqual([first!.clients, second!.clients], [['hal'], ['hal']])
    assert.ok(second!.at - first!.at >= 900, 'after Retry-After')
    assert.ok(second!.at >= started)
    // The second call hangs; stopping the service abandons it (the gateway sees the request go).
    tcp.close()
    const abandoned = gateway.abandoned
    await running.close()
    stopped = true
    await until(() => gateway.abandoned === abandoned + 1, 'the hanging call to be abandoned')
  })
})
