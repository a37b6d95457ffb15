import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { groupView, messageView, toByteArray } from '../../src/schemas/views.js'
import { request, startServer, type Harness } from './helpers.js'

const relay = (group_id: string, sender_id: string, message: number[], message_type = 'Application') => ({ type: 'RelayMessage', group_id, sender_id, message, message_type })
const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

describe('legacy TCP protocol: extensions', () => {
  let h: Harness
  before(async () => {
    h = await startServer({ maxMessageBytes: 4096 })
  })
  after(() => h.close())

  it('GetGroup answers a GroupResponse with creator, next seq and creation time', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'g1', creator_id: 'alice' })
    await request(h.port, { type: 'JoinGroup', group_id: 'g1', client_id: 'bob' })
    const group = await request(h.port, { type: 'GetGroup', group_id: 'g1' })
    assert.match(group.created_at, iso)
    assert.deepEqual([group.group_id, group.members, group.creator_id, group.next_seq], ['g1', ['alice', 'bob'], 'alice', 1])
    // The same facts as the REST door's view of the group.
    assert.deepEqual(group, { type: 'GroupResponse', ...groupView(await h.service.getGroup('g1')) })
    assert.deepEqual(await request(h.port, { type: 'GetGroup', group_id: 'nope' }), { type: 'Error', message: 'Failed to get group: Group not found: nope', code: 'group_not_found' })
  })

  it('ListKeyPackages: every client without `limit`, as the original; pages with `after` and `limit`, as REST', async () => {
    for (const id of ['lk-a', 'lk-b', 'lk-c']) await request(h.port, { type: 'StoreKeyPackage', client_id: id, key_package: [1, 2, 3] })
    const all = await request(h.port, { type: 'ListKeyPackages' })
    assert.deepEqual(Object.keys(all).sort(), ['clients', 'type'], 'the original shape: no next_after')
    assert.deepEqual(all.clients.filter((id: string) => id.startsWith('lk-')), ['lk-a', 'lk-b', 'lk-c'])
    assert.deepEqual(await request(h.port, { type: 'ListKeyPackages', after: 'lk-', limit: 2 }), { type: 'KeyPackageListResponse', clients: ['lk-a', 'lk-b'], next_after: 'lk-b' })
    const rest = await request(h.port, { type: 'ListKeyPackages', after: 'lk-b', limit: 2 })
    assert.deepEqual(rest.clients[0], 'lk-c')
    const page = await h.service.listKeyPackageClients({ after: 'lk-b', limit: 2 })
    assert.deepEqual(rest, { type: 'KeyPackageListResponse', clients: page.clients, ...(page.nextAfter ? { next_after: page.nextAfter } : {}) })
    assert.match((await request(h.port, { type: 'ListKeyPackages', limit: 0 })).message, /^Invalid message format: .*limit/)
    assert.match((await request(h.port, { type: 'ListKeyPackages', limit: 1001 })).message, /^Invalid message format: .*limit/)
  })

  it('ReadMessages returns what was relayed, after a seq, up to a limit', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'g2', creator_id: 'alice' })
    for (let i = 1; i <= 3; i++) assert.equal((await request(h.port, relay('g2', 'alice', [i, i]))).success, true)
    const all = await request(h.port, { type: 'ReadMessages', group_id: 'g2' })
    assert.equal(all.type, 'MessagesResponse')
    assert.equal(all.group_id, 'g2')
    assert.deepEqual(all.messages.map((m: { seq: number; message: number[] }) => [m.seq, m.message]), [[1, [1, 1]], [2, [2, 2]], [3, [3, 3]]])
    const [first] = all.messages
    assert.deepEqual([first.seq, first.sender_id, first.message_type, first.message], [1, 'alice', 'Application', [1, 1]])
    assert.match(first.received_at, iso)
    const stored = await h.service.readMessages('g2')
    assert.deepEqual(all.messages, stored.messages.map((m) => messageView(m, toByteArray)))
    const page = await request(h.port, { type: 'ReadMessages', group_id: 'g2', after: 1, limit: 1 })
    assert.deepEqual(page.messages.map((m: { seq: number }) => m.seq), [2])
    assert.deepEqual((await request(h.port, { type: 'ReadMessages', group_id: 'g2', after: 3 })).messages, [])
    assert.deepEqual(await request(h.port, { type: 'ReadMessages', group_id: 'nope' }), { type: 'Error', message: 'Failed to read messages: Group not found: nope', code: 'group_not_found' })
    assert.deepEqual(await request(h.port, { type: 'ReadMessages', group_id: 'g2', limit: 0 }), {
      type: 'Error',
      message: 'Invalid message format: invalid value: integer `0` at field `limit` (must be >= 1)',
    })
    assert.deepEqual(await request(h.port, { type: 'ReadMessages', group_id: 'g2', after: 'x' }), {
      type: 'Error',
      message: 'Invalid message format: invalid type: string "x", expected an integer at field `after`',
    })
  })

  it('ReadMessages bounds one answer by the message size limit, always returning at least one', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'big', creator_id: 'a' })
    // The limit here is 4096 bytes of request JSON: a 900-byte message is ~3.5 KB of it.
    // Distinct bytes: the service treats the same bytes from the same sender as a retry.
    const data = (n: number) => Array.from({ length: 900 }, (_, i) => (i + n) % 256)
    for (let i = 0; i < 6; i++) assert.equal((await request(h.port, relay('big', 'a', data(i)))).success, true)
    const first = await request(h.port, { type: 'ReadMessages', group_id: 'big' })
    assert.equal(first.messages.length, 4) // 4 × 900 <= 4096 < 5 × 900
    const rest = await request(h.port, { type: 'ReadMessages', group_id: 'big', after: first.messages.at(-1).seq })
    assert.deepEqual(rest.messages.map((m: { seq: number }) => m.seq), [5, 6])
  })

  it('LeaveGroup removes a member; only members may relay afterwards', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'g3', creator_id: 'alice' })
    await request(h.port, { type: 'JoinGroup', group_id: 'g3', client_id: 'bob' })
    const left = await request(h.port, { type: 'LeaveGroup', group_id: 'g3', client_id: 'bob' })
    assert.equal(left.type, 'GroupResponse')
    assert.deepEqual(left.members, ['alice'])
    assert.equal(left.creator_id, 'alice')
    assert.deepEqual(await request(h.port, relay('g3', 'bob', [1])), { type: 'Error', message: 'Failed to relay message: Sender not in group: bob', code: 'not_member' })
    assert.deepEqual(await request(h.port, { type: 'LeaveGroup', group_id: 'g3', client_id: 'bob' }), { type: 'Error', message: 'Failed to leave group: Client not in group: bob', code: 'member_not_found' })
    assert.deepEqual(await request(h.port, { type: 'LeaveGroup', group_id: 'nope', client_id: 'bob' }), { type: 'Error', message: 'Failed to leave group: Group not found: nope', code: 'group_not_found' })
  })

  it('DeleteGroup and DeleteKeyPackages answer MessageResponse success', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'g4', creator_id: 'alice' })
    assert.deepEqual(await request(h.port, { type: 'DeleteGroup', group_id: 'g4' }), { type: 'MessageResponse', success: true, message: 'Group deleted: g4' })
    assert.deepEqual(await request(h.port, { type: 'DeleteGroup', group_id: 'g4' }), { type: 'Error', message: 'Failed to delete group: Group not found: g4', code: 'group_not_found' })
    assert.equal((await request(h.port, { type: 'CreateGroup', group_id: 'g4', creator_id: 'bob' })).type, 'GroupResponse')

    await request(h.port, { type: 'StoreKeyPackage', client_id: 'carol', key_package: [1] })
    assert.deepEqual(await request(h.port, { type: 'DeleteKeyPackages', client_id: 'carol' }), { type: 'MessageResponse', success: true, message: 'Deleted 1 KeyPackage(s) for carol' })
    assert.deepEqual(await request(h.port, { type: 'FetchKeyPackage', client_id: 'carol' }), { type: 'KeyPackageResponse', client_id: 'carol', key_package: null })
    assert.deepEqual(await request(h.port, { type: 'DeleteKeyPackages', client_id: 'carol' }), { type: 'MessageResponse', success: true, message: 'Deleted 0 KeyPackage(s) for carol' })
  })

  it('shares state with the service the REST door uses', async () => {
    await h.service.createGroup('shared', 'rest-user')
    await h.service.relayMessage({ groupId: 'shared', senderId: 'rest-user', message: Uint8Array.of(7, 8), messageType: 'Commit' }, { validation: 'permissive' })
    const read = await request(h.port, { type: 'ReadMessages', group_id: 'shared' })
    assert.deepEqual(read.messages.map((m: { message: number[]; message_type: string }) => [m.message, m.message_type]), [[[7, 8], 'Commit']])
    await request(h.port, { type: 'JoinGroup', group_id: 'shared', client_id: 'tcp-user' })
    assert.deepEqual((await h.service.getGroup('shared')).members, ['rest-user', 'tcp-user'])
  })
})
