import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { at, type Body } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { TcpApi } from '../tcp/tcp-api.js'

/**
 * GET /clients/{c}/groups and DELETE /clients/{c}, and their TCP twins ListClientGroups and
 * DeleteClient, on one running service (both doors, one state), with opaque legacy bytes.
 */
describe("a client's groups, and deleting a client", () => {
  const service = useTestService({ mlsValidation: 'permissive' })
  let tcp: TcpApi
  before(async () => {
    tcp = await TcpApi.connect(service.running.tcpPort!)
  })
  after(() => tcp.close())

  const groups = (client: string, query = '') => service.api.call('GET', `/clients/${at(client)}/groups${query}`)
  const deleteClient = (client: string) => service.api.call('DELETE', `/clients/${at(client)}`)
  const opaque = (text: string) => Buffer.from(text).toString('base64')
  const join = (group: string, client: string) => service.api.call('POST', `/groups/${at(group)}/members`, { client_id: client })
  const say = (group: string, sender: string, text: string) => service.api.call('POST', `/groups/${at(group)}/messages`, { sender_id: sender, message: opaque(text), message_type: 'Application' })

  test('lists the groups a client is in, in code point order, a page at a time; the TCP door answers the same', async () => {
    for (const group of ['lg-c', 'lg-a', 'lg-b', 'lg-😀', 'lg-\u{E000}']) {
      assert.equal((await service.api.createGroup(group, 'lg-owner')).status, 201)
      assert.equal((await join(group, 'lg-bob')).status, 200)
    }
    await service.api.createGroup('lg-elsewhere', 'lg-owner')
    assert.equal((await service.api.call('DELETE', `/groups/${at('lg-b')}/members/lg-bob`)).status, 204)

    const all = await groups('lg-bob')
    assert.equal(all.status, 200)
    assert.deepEqual(all.body, { client_id: 'lg-bob', groups: ['lg-a', 'lg-c', 'lg-\u{E000}', 'lg-😀'] })
    const first = await groups('lg-bob', '?limit=2')
    assert.deepEqual(first.body, { client_id: 'lg-bob', groups: ['lg-a', 'lg-c'], next_after: 'lg-c' })
    const second = await groups('lg-bob', `?limit=2&after=${at('lg-c')}`)
    assert.deepEqual(second.body, { client_id: 'lg-bob', groups: ['lg-\u{E000}', 'lg-😀'] }, 'the last page has no next_after')
    assert.deepEqual((await groups('lg-nobody')).body, { client_id: 'lg-nobody', groups: [] })
    assert.deepEqual((await groups('lg-owner')).body.groups, ['lg-a', 'lg-b', 'lg-c', 'lg-elsewhere', 'lg-\u{E000}', 'lg-😀'])

    assert.deepEqual(await tcp.call({ type: 'ListClientGroups', client_id: 'lg-bob', limit: 2 }), { type: 'ClientGroupsResponse', ...first.body })
    assert.deepEqual(await tcp.call({ type: 'ListClientGroups', client_id: 'lg-bob' }), { type: 'ClientGroupsResponse', ...all.body })
    assert.deepEqual(await tcp.call({ type: 'ListClientGroups', client_id: '__proto__' }), { type: 'ClientGroupsResponse', client_id: '__proto__', groups: [] })
  })

  test('bad input is a 400 that names the field (TCP: Invalid message format); hostile ids are ids', async () => {
    for (const query of ['?limit=0', '?limit=1001', '?limit=two', '?after=', '?after=' + 'x'.repeat(257), '?sort=desc']) {
      const reply = await groups('bob', query)
      assert.equal(reply.status, 400, query)
      assert.equal(reply.body.error, 'bad_request', query)
      assert.match(reply.body.message, /limit|after|sort|querystring/, query)
    }
    for (const request of [{ type: 'ListClientGroups' }, { type: 'ListClientGroups', client_id: 'bob', limit: 0 }, { type: 'DeleteClient', client_id: '' }, { type: 'DeleteClient', client_id: 7 }]) {
      const answer = await tcp.call(request)
      assert.equal(answer.type, 'Error', JSON.stringify(request))
      assert.match(answer.message, /^Invalid message format: .*(client_id|limit)/, JSON.stringify(request))
    }
    assert.equal((await deleteClient('x'.repeat(257))).status, 400)
    for (const id of ['__proto__', 'constructor', 'hasOwnProperty']) {
      assert.equal((await service.api.createGroup(`hostile-${id}`, id)).status, 201)
      assert.deepEqual((await groups(id)).body, { client_id: id, groups: [`hostile-${id}`] }, id)
      assert.deepEqual((await deleteClient(id)).body, { client_id: id, groups_left: 1, key_packages_deleted: 0, deliveries_deleted: 0, welcomes_deleted: 0 }, id)
      assert.deepEqual((await service.api.group(`hostile-${id}`)).members, [], id)
    }
    const wrongMethod = await service.api.call('GET', '/clients/bob')
    assert.deepEqual([wrongMethod.status, wrongMethod.headers.get('allow'), wrongMethod.body.error], [405, 'DELETE', 'method_not_allowed'])
  })

  test('delete: the client leaves its groups, its KeyPackages, queue and Welcomes go, the rest stays; both doors see it', async () => {
    await service.api.createGroup('dc-1', 'dc-alice')
    await service.api.createGroup('dc-2', 'dc-bob')
    for (const [group, client] of [['dc-1', 'dc-bob'], ['dc-1', 'dc-carol'], ['dc-2', 'dc-alice']] as const) assert.equal((await join(group, client)).status, 200)
    const packages = await service.api.call('PUT', '/key-packages/dc-bob', { key_package: opaque('bob legacy key package') })
    assert.equal(packages.status, 200)
    assert.equal((await say('dc-1', 'dc-alice', 'one')).status, 201)
    assert.equal((await say('dc-1', 'dc-alice', 'two')).status, 201)
    assert.equal((await say('dc-2', 'dc-bob', 'from bob')).status, 201)
    const ack = await service.api.call('POST', '/clients/dc-bob/ack', { up_to: 1 })
    assert.deepEqual(ack.body, { client_id: 'dc-bob', acked_up_to: 1, remaining: 1 })

    const deleted = await deleteClient('dc-bob')
    assert.equal(deleted.status, 200)
    assert.deepEqual(deleted.body, { client_id: 'dc-bob', groups_left: 2, key_packages_deleted: 1, deliveries_deleted: 1, welcomes_deleted: 0 })

    assert.deepEqual((await service.api.group('dc-1')).members, ['dc-alice', 'dc-carol'])
    const tcpGroup = await tcp.call({ type: 'GetGroup', group_id: 'dc-2' })
    assert.deepEqual([tcpGroup.members, tcpGroup.creator_id], [['dc-alice'], 'dc-bob'], 'the group stays; its creator is a fact of its history')
    assert.deepEqual((await service.api.messages('dc-2')).map((m: Body) => m.sender_id), ['dc-bob'], 'what bob sent stays in the log')
    assert.deepEqual(await service.api.count('dc-bob'), { client_id: 'dc-bob', total: 0, by_ciphersuite: {}, last_resort: 0, legacy: 0 })
    assert.deepEqual(await tcp.call({ type: 'FetchKeyPackage', client_id: 'dc-bob' }), { type: 'KeyPackageResponse', client_id: 'dc-bob', key_package: null })
    const queue = await service.api.call('GET', '/clients/dc-bob/messages?after=0')
    assert.deepEqual(queue.body, { client_id: 'dc-bob', deliveries: [], next_after: 0 })
    assert.deepEqual((await groups('dc-bob')).body.groups, [])
    assert.equal((await service.api.call('GET', '/clients/dc-carol/messages?after=0')).body.deliveries.length, 2, 'carol keeps hers')

    // Later messages do not reach it; sent again, its queue goes on from seq 3, so a device's
    // cursor never skips what comes next.
    assert.equal((await say('dc-1', 'dc-alice', 'three')).status, 201)
    assert.deepEqual((await service.api.call('GET', '/clients/dc-bob/messages?after=0')).body.deliveries, [])
    const rejoined = await tcp.call({ type: 'JoinGroup', group_id: 'dc-1', client_id: 'dc-bob' })
    assert.deepEqual(rejoined.members, ['dc-alice', 'dc-carol', 'dc-bob'])
    assert.equal((await say('dc-1', 'dc-alice', 'four')).status, 201)
    const again = await service.api.call('GET', '/clients/dc-bob/messages?after=2')
    assert.deepEqual(again.body.deliveries.map((d: Body) => [d.seq, Buffer.from(d.message, 'base64').toString()]), [[3, 'four']])

    const overTcp = await tcp.call({ type: 'DeleteClient', client_id: 'dc-bob' })
    assert.deepEqual(overTcp, { type: 'ClientDeletedResponse', client_id: 'dc-bob', groups_left: 1, key_packages_deleted: 0, deliveries_deleted: 1, welcomes_deleted: 0 })
    assert.deepEqual((await deleteClient('dc-bob')).body, { client_id: 'dc-bob', groups_left: 0, key_packages_deleted: 0, deliveries_deleted: 0, welcomes_deleted: 0 }, 'again: a retry is answered, with zeros')
    assert.deepEqual((await deleteClient('dc-never-seen')).body, { client_id: 'dc-never-seen', groups_left: 0, key_packages_deleted: 0, deliveries_deleted: 0, welcomes_deleted: 0 })

    const metrics = await (await fetch(`${service.api.base}/metrics`)).text()
    assert.match(metrics, /^mlsds_clients_deleted_total [1-9]\d*$/m)
  })
})
