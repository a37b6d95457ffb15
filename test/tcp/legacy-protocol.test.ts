import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { ascii, legacyRequest, request, startServer, type Harness } from './helpers.js'

describe('legacy TCP protocol: what the original clients do', () => {
  let h: Harness
  before(async () => {
    h = await startServer()
  })
  after(() => h.close())

  it('runs the original clients\' full sequence, one request per connection, one read of 1024 bytes', async () => {
    const keyPackage = ascii('base64_encoded_key_package_data_here')

    assert.deepEqual(await legacyRequest(h.port, { type: 'ListKeyPackages' }), { type: 'KeyPackageListResponse', clients: [] })
    assert.deepEqual(await legacyRequest(h.port, { type: 'StoreKeyPackage', client_id: 'test_user_001', key_package: keyPackage }), {
      type: 'MessageResponse',
      success: true,
      message: 'KeyPackage stored for test_user_001',
    })
    assert.deepEqual(await legacyRequest(h.port, { type: 'FetchKeyPackage', client_id: 'test_user_001' }), {
      type: 'KeyPackageResponse',
      client_id: 'test_user_001',
      key_package: keyPackage,
    })
    assert.deepEqual(await legacyRequest(h.port, { type: 'CreateGroup', group_id: 'test_group_001', creator_id: 'user1' }), {
      type: 'GroupResponse',
      group_id: 'test_group_001',
      members: ['user1'],
    })
    assert.deepEqual(
      await legacyRequest(h.port, { type: 'RelayMessage', group_id: 'test_group_001', sender_id: 'user1', message: ascii('message_data'), message_type: 'Application' }),
      { type: 'MessageResponse', success: true, message: 'Message relayed successfully' },
    )
    const invalid = await legacyRequest(h.port, { type: 'InvalidMessageType' })
    assert.equal(invalid.type, 'Error')
    assert.match(invalid.message, /^Invalid message format: unknown variant `InvalidMessageType`/)
    assert.deepEqual(await legacyRequest(h.port, { type: 'FetchKeyPackage', client_id: 'nonexistent_user' }), {
      type: 'KeyPackageResponse',
      client_id: 'nonexistent_user',
      key_package: null,
    })
  })

  it('keeps one key package per client: storing again replaces it, fetching does not remove it', async () => {
    await request(h.port, { type: 'StoreKeyPackage', client_id: 'kp', key_package: [1, 2] })
    await request(h.port, { type: 'StoreKeyPackage', client_id: 'kp', key_package: [3, 4] })
    for (let i = 0; i < 2; i++) {
      assert.deepEqual((await request(h.port, { type: 'FetchKeyPackage', client_id: 'kp' })).key_package, [3, 4])
    }
    assert.ok((await request(h.port, { type: 'ListKeyPackages' })).clients.includes('kp'))
  })

  it('joins idempotently and lists members in join order', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'j', creator_id: 'alice' })
    assert.deepEqual(await request(h.port, { type: 'JoinGroup', group_id: 'j', client_id: 'bob' }), { type: 'GroupResponse', group_id: 'j', members: ['alice', 'bob'] })
    assert.deepEqual(await request(h.port, { type: 'JoinGroup', group_id: 'j', client_id: 'bob' }), { type: 'GroupResponse', group_id: 'j', members: ['alice', 'bob'] })
    const relay = { type: 'RelayMessage', group_id: 'j', sender_id: 'bob', message: [1], message_type: 'Commit' }
    assert.equal((await request(h.port, relay)).success, true)
  })

  it('answers each failure with the original error texts', async () => {
    await request(h.port, { type: 'CreateGroup', group_id: 'e', creator_id: 'alice' })
    // Refusals of the service: the original's exact message, plus the additive `code` of the
    // error table (legacy clients compare `type` and the fields they know).
    const refusals: Array<[unknown, string, string]> = [
      [{ type: 'CreateGroup', group_id: 'e', creator_id: 'bob' }, 'Failed to create group: Group already exists: e', 'group_exists'],
      [{ type: 'JoinGroup', group_id: 'nope', client_id: 'bob' }, 'Failed to join group: Group not found: nope', 'group_not_found'],
      [{ type: 'RelayMessage', group_id: 'e', sender_id: 'mallory', message: [1], message_type: 'Application' }, 'Failed to relay message: Sender not in group: mallory', 'not_member'],
      [{ type: 'RelayMessage', group_id: 'nope', sender_id: 'alice', message: [1], message_type: 'Application' }, 'Failed to relay message: Group not found: nope', 'group_not_found'],
    ]
    for (const [body, message, code] of refusals) {
      assert.deepEqual(await request(h.port, body), { type: 'Error', message, code }, JSON.stringify(body))
    }
    // Malformed requests and response types: exactly {type, message}, as the original.
    const cases: Array<[unknown, string]> = [
      [{ type: 'MessageResponse', success: true, message: 'hi' }, 'Invalid message type for server'],
      [{ type: 'KeyPackageResponse', client_id: 'a', key_package: null }, 'Invalid message type for server'],
      [{ type: 'KeyPackageListResponse', clients: [] }, 'Invalid message type for server'],
      [{ type: 'GroupResponse', group_id: 'g', members: [] }, 'Invalid message type for server'],
      [{ type: 'Error', message: 'x' }, 'Invalid message type for server'],
      [{ type: 'MessagesResponse', group_id: 'g', messages: [] }, 'Invalid message type for server'],
      [{ type: 'StoreKeyPackage', key_package: [1] }, 'Invalid message format: missing field `client_id`'],
      [{ type: 'StoreKeyPackage', client_id: 'a' }, 'Invalid message format: missing field `key_package`'],
      [{ type: 'FetchKeyPackage' }, 'Invalid message format: missing field `client_id`'],
      [{ type: 'CreateGroup', group_id: 'x' }, 'Invalid message format: missing field `creator_id`'],
      [{ type: 'JoinGroup', client_id: 'x' }, 'Invalid message format: missing field `group_id`'],
      [{ type: 'RelayMessage', group_id: 'e', sender_id: 'alice', message: [1] }, 'Invalid message format: missing field `message_type`'],
      [{ client_id: 'a' }, 'Invalid message format: missing field `type`'],
      [{ type: 7 }, 'Invalid message format: invalid type: integer `7`, expected a string at field `type`'],
      [{ type: 'StoreKeyPackage', client_id: 5, key_package: [1] }, 'Invalid message format: invalid type: integer `5`, expected a string at field `client_id`'],
      [{ type: 'StoreKeyPackage', client_id: 'a', key_package: 'AAAA' }, 'Invalid message format: invalid type: string "AAAA", expected a sequence at field `key_package`'],
      [{ type: 'StoreKeyPackage', client_id: 'a', key_package: [1, 256] }, 'Invalid message format: invalid value: integer `256` at field `key_package[1]` (must be <= 255)'],
      [{ type: 'StoreKeyPackage', client_id: 'a', key_package: [1, -1] }, 'Invalid message format: invalid value: integer `-1` at field `key_package[1]` (must be >= 0)'],
      [{ type: 'StoreKeyPackage', client_id: 'a', key_package: [1.5] }, 'Invalid message format: invalid type: floating point `1.5`, expected an integer at field `key_package[0]`'],
      [{ type: 'StoreKeyPackage', client_id: 'a', key_package: [] }, 'Invalid message format: invalid length 0, expected at least one byte at field `key_package`'],
      [{ type: 'StoreKeyPackage', client_id: '', key_package: [1] }, 'Invalid message format: invalid value: string "" at field `client_id` (must not have fewer than 1 characters)'],
      [{ type: 'RelayMessage', group_id: 'e', sender_id: 'alice', message: [1], message_type: 'Chat' }, 'Invalid message format: unknown variant `Chat`, expected one of `Welcome`, `Add`, `Application`, `Commit`, `Proposal` at field `message_type`'],
      ['42', 'Invalid message format: invalid type: integer `42`, expected a map tagged by `type`'],
      ['[1]', 'Invalid message format: invalid type: a sequence, expected a map tagged by `type`'],
      ['"ListKeyPackages"', 'Invalid message format: invalid type: string "ListKeyPackages", expected a map tagged by `type`'],
      ['null', 'Invalid message format: invalid type: null, expected a map tagged by `type`'],
      ['hello', 'Invalid message format: expected value at line 1 column 1'],
    ]
    for (const [body, message] of cases) {
      assert.deepEqual(await request(h.port, body), { type: 'Error', message }, JSON.stringify(body))
    }
  })

  it('ignores unknown fields, as the original\'s serde structs did', async () => {
    assert.deepEqual(await request(h.port, { type: 'ListKeyPackages', extra: { nested: [1, 2] } }), (await request(h.port, { type: 'ListKeyPackages' })))
  })

  it('treats hostile ids and types as plain strings', async () => {
    for (const id of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty']) {
      assert.deepEqual(await request(h.port, { type: 'CreateGroup', group_id: id, creator_id: id }), { type: 'GroupResponse', group_id: id, members: [id] })
      assert.deepEqual(await request(h.port, { type: 'JoinGroup', group_id: id, client_id: 'x' }), { type: 'GroupResponse', group_id: id, members: [id, 'x'] })
      const relay = await request(h.port, { type: 'RelayMessage', group_id: id, sender_id: id, message: [1], message_type: 'Application' })
      assert.equal(relay.success, true)
      await request(h.port, { type: 'StoreKeyPackage', client_id: id, key_package: [9] })
      assert.deepEqual(await request(h.port, { type: 'FetchKeyPackage', client_id: id }), { type: 'KeyPackageResponse', client_id: id, key_package: [9] })
      const unknown = await request(h.port, { type: id })
      assert.match(unknown.message, new RegExp(`^Invalid message format: unknown variant \`${id}\``))
    }
    // A JSON key named __proto__ is an own property, not a prototype change.
    const raw = '{"__proto__":{"type":"ListKeyPackages"},"type":"FetchKeyPackage","client_id":"__proto__"}'
    assert.deepEqual((await request(h.port, raw)).key_package, [9])
    assert.deepEqual(await request(h.port, '{"__proto__":{"type":"ListKeyPackages"}}'), { type: 'Error', message: 'Invalid message format: missing field `type`' })
  })

  it('keeps a legacy answer within one 1024-byte read even for a hostile unknown type', async () => {
    const answer = await legacyRequest(h.port, { type: 'x'.repeat(5000) })
    assert.equal(answer.type, 'Error')
  })
})
