import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { RunningService } from '../../src/runtime.js'
import { MlsTestClient } from '../helpers/mls-client.js'
import { RestApi, b64, unb64 } from '../helpers/rest-api.js'
import { startTestService } from '../helpers/service.js'
import { ascii, request, startServer } from './helpers.js'
import { bytes, TcpApi } from './tcp-api.js'

/** The MLS extensions of the TCP door, over real sockets, sharing the service with REST. */
describe('TCP door: MLS extensions', () => {
  let running: RunningService
  let tcp: TcpApi
  let rest: RestApi
  let port: number
  before(async () => {
    running = await startTestService()
    port = running.tcpPort!
    tcp = await TcpApi.connect(port)
    rest = new RestApi(running.httpPort)
  })
  after(async () => {
    tcp.close()
    await running.close()
  })

  /** A group `id` on the DS whose creator `name` has the MLS group too. */
  async function mlsGroup(id: string, name = 'alice'): Promise<MlsTestClient> {
    const client = await MlsTestClient.create(name)
    await client.createGroup(id)
    assert.equal((await tcp.createGroup(id, name)).type, 'GroupResponse')
    return client
  }

  it('StoreKeyPackages stores a batch; CountKeyPackages counts by suite; FetchKeyPackage claims by suite', async () => {
    const client = await MlsTestClient.create('kp-1')
    const [a, b, lr] = [await client.createKeyPackage(), await client.createKeyPackage(), await client.createKeyPackage({ lastResort: true })]
    assert.deepEqual(await tcp.storeKeyPackages('kp-1', [a.bytes, b.bytes]), {
      type: 'MessageResponse', success: true, message: 'Stored 2 KeyPackage(s) for kp-1', stored: 2, available: 2,
    })
    assert.deepEqual((await tcp.storeKeyPackages('kp-1', [lr.bytes])).available, 3)
    assert.deepEqual(await tcp.count('kp-1'), { type: 'KeyPackageCountResponse', client_id: 'kp-1', total: 3, by_ciphersuite: { 1: 3 }, last_resort: 1, legacy: 0 })
    // An MLS KeyPackage is answered with its ref, suite and kind, as on REST.
    assert.deepEqual(await tcp.fetchKeyPackage('kp-1', 1), {
      type: 'KeyPackageResponse', client_id: 'kp-1', key_package: bytes(a.bytes), key_package_ref: a.ref, ciphersuite: 1, last_resort: false,
    })
    assert.deepEqual(await tcp.fetchKeyPackage('kp-1', 3), { type: 'KeyPackageResponse', client_id: 'kp-1', key_package: null })
    assert.equal((await tcp.fetchKeyPackage('kp-1')).key_package_ref, b.ref)
    const kept = await tcp.fetchKeyPackage('kp-1')
    assert.deepEqual([kept.key_package_ref, kept.last_resort], [lr.ref, true])
    assert.equal((await tcp.count('kp-1')).total, 1, 'the last-resort KeyPackage is kept')
    assert.deepEqual(await tcp.fetchKeyPackage('kp-1', 4660), {
      type: 'Error', message: 'Failed to fetch key package: ciphersuite 4660 is not a known MLS ciphersuite', code: 'bad_request',
    })
  })

  it('DeleteKeyPackage deletes one by ref; an unknown ref is an Error', async () => {
    const kp = await (await MlsTestClient.create('kp-2')).createKeyPackage()
    await tcp.storeKeyPackages('kp-2', [kp.bytes])
    assert.deepEqual(await tcp.call({ type: 'DeleteKeyPackage', client_id: 'kp-2', ref: kp.ref.toUpperCase() }), {
      type: 'MessageResponse', success: true, message: `KeyPackage deleted: ${kp.ref.toUpperCase()}`,
    })
    assert.deepEqual(await tcp.call({ type: 'DeleteKeyPackage', client_id: 'kp-2', ref: kp.ref }), {
      type: 'Error', message: `Failed to delete key package: Client kp-2 has no KeyPackage ${kp.ref}`, code: 'key_package_not_found',
    })
    const bad = await tcp.call({ type: 'DeleteKeyPackage', client_id: 'kp-2', ref: 'not-hex' })
    assert.equal(bad.type, 'Error')
    assert.match(bad.message, /^Invalid message format: invalid value: string "not-hex" at field `ref`/)
    assert.deepEqual(Object.keys(bad), ['type', 'message'])
  })

  it('refuses an invalid KeyPackage with code invalid_key_package and the failed check', async () => {
    const client = await MlsTestClient.create('kp-3')
    const good = await client.createKeyPackage()
    const tampered = Uint8Array.from(good.bytes)
    tampered[tampered.length - 1]! ^= 1
    const answer = await tcp.storeKeyPackages('kp-3', [good.bytes, tampered])
    assert.deepEqual(Object.keys(answer), ['type', 'message', 'code', 'check'])
    assert.deepEqual([answer.type, answer.code, answer.check], ['Error', 'invalid_key_package', 'signature'])
    assert.match(answer.message, /^Failed to store key packages: key_packages\[1\]: /)
    const expired = await client.createKeyPackage({ lifetime: { notBefore: 1000, notAfter: 2000 } })
    const old = await request(port, { type: 'StoreKeyPackage', client_id: 'kp-3', key_package: bytes(expired.bytes) })
    assert.deepEqual([old.type, old.code, old.check], ['Error', 'invalid_key_package', 'expired'])
    assert.match(old.message, /^Failed to store key package: /)
    assert.equal((await tcp.count('kp-3')).total, 0, 'one bad KeyPackage rejects the batch')
  })

  it('permissive mode: random bytes are legacy data; truncated or trailing MLS bytes are refused', async () => {
    const client = await MlsTestClient.create('kp-4')
    const kp = (await client.createKeyPackage()).bytes
    const random = ascii('base64_encoded_key_package_data_here')
    assert.equal((await tcp.storeKeyPackages('kp-4', [Uint8Array.from(random)])).success, true)
    assert.deepEqual(await tcp.count('kp-4'), { type: 'KeyPackageCountResponse', client_id: 'kp-4', total: 1, by_ciphersuite: {}, last_resort: 0, legacy: 1 })
    // Opaque legacy data is answered in exactly the original's shape.
    assert.deepEqual(await tcp.fetchKeyPackage('kp-4'), { type: 'KeyPackageResponse', client_id: 'kp-4', key_package: random })
    const truncated = await tcp.storeKeyPackages('kp-4', [kp.subarray(0, kp.length - 20)])
    assert.deepEqual([truncated.type, truncated.code, truncated.check], ['Error', 'invalid_key_package', 'malformed'], JSON.stringify(truncated))
    const trailing = await tcp.storeKeyPackages('kp-4', [Uint8Array.from([...kp, 0, 0])])
    assert.deepEqual([trailing.type, trailing.code, trailing.check], ['Error', 'invalid_key_package', 'trailing_bytes'], JSON.stringify(trailing))

    // The same for relayed messages: placeholders are relayed, broken MLS is not.
    const alice = await mlsGroup('perm')
    assert.equal((await tcp.relay('perm', 'alice', Uint8Array.from(ascii('message_data')))).success, true)
    const message = await alice.sendApplication('hi')
    for (const broken of [message.subarray(0, message.length - 5), Uint8Array.from([...message, 1])]) {
      const answer = await tcp.relay('perm', 'alice', broken)
      assert.deepEqual([answer.type, answer.code], ['Error', 'invalid_message'], JSON.stringify(answer))
      assert.match(answer.message, /^Failed to relay message: message: /)
      assert.ok(['malformed', 'trailing_bytes'].includes(answer.check), answer.check)
    }
    assert.equal((await tcp.relay('perm', 'alice', message)).success, true)
  })

  it('strict mode refuses bytes that are not MLS, with check not_mls', async () => {
    const h = await startServer({ mlsValidation: 'strict' })
    try {
      const answer = await request(h.port, { type: 'StoreKeyPackages', client_id: 'a', key_packages: [[1, 2, 3]] })
      assert.deepEqual([answer.type, answer.code, answer.check], ['Error', 'invalid_key_package', 'not_mls'])
    } finally {
      await h.close()
    }
  })

  it('CommitBundle: accepted once per epoch; a stale relay or commit gets stale_epoch and current_epoch', async () => {
    const alice = await mlsGroup('stale')
    const early = await alice.sendApplication('sent at epoch 0')
    const first = await alice.selfUpdate()
    assert.deepEqual(await tcp.commit('stale', 'alice', first), { type: 'CommitResponse', group_id: 'stale', seq: 1, epoch: 1, message_type: 'Commit' })
    assert.deepEqual(await tcp.relay('stale', 'alice', early), {
      type: 'Error',
      message: 'Failed to relay message: Stale epoch: the message is for epoch 0, the group is at epoch 1',
      code: 'stale_epoch',
      current_epoch: 1,
    })
    alice.rollback()
    const second = await alice.selfUpdate()
    const answer = await tcp.commit('stale', 'alice', second)
    assert.deepEqual([answer.type, answer.code, answer.current_epoch], ['Error', 'stale_epoch', 1])
    // A Commit relayed with RelayMessage is checked the same way.
    const relayed = await tcp.relay('stale', 'alice', second.commit, 'Commit')
    assert.deepEqual([relayed.code, relayed.current_epoch], ['stale_epoch', 1])
  })

  it('CommitBundle refusals: wrong group, not a commit, not a member, unknown group, stray fields', async () => {
    const alice = await mlsGroup('cb-a')
    await tcp.createGroup('cb-b', 'alice')
    const bundle = await alice.selfUpdate()
    const wrong = await tcp.commit('cb-b', 'alice', bundle)
    assert.deepEqual([wrong.type, wrong.code, wrong.check], ['Error', 'invalid_message', 'group_id'])
    assert.equal(wrong.message, 'Failed to commit: the MLS group id of the message does not match group cb-b')
    const wrongRelay = await tcp.relay('cb-b', 'alice', bundle.commit, 'Commit')
    assert.deepEqual([wrongRelay.code, wrongRelay.check], ['invalid_message', 'group_id'])

    const app = await tcp.call({ type: 'CommitBundle', group_id: 'cb-a', sender_id: 'alice', commit: bytes(await alice.sendApplication('x')) })
    assert.deepEqual([app.code, app.message], ['invalid_message', 'Failed to commit: commit: the message is application, not a Commit'])
    const placeholder = await tcp.call({ type: 'CommitBundle', group_id: 'cb-a', sender_id: 'alice', commit: ascii('message_data') })
    assert.equal(placeholder.code, 'invalid_message', 'a commit bundle is always MLS')
    assert.deepEqual(await tcp.commit('cb-a', 'mallory', bundle), { type: 'Error', message: 'Failed to commit: Sender not in group: mallory', code: 'not_member' })
    const nope = await MlsTestClient.create('x')
    await nope.createGroup('cb-nope')
    assert.deepEqual(await tcp.commit('cb-nope', 'x', await nope.selfUpdate()), { type: 'Error', message: 'Failed to commit: Group not found: cb-nope', code: 'group_not_found' })
    const base = { type: 'CommitBundle', group_id: 'cb-a', sender_id: 'alice', commit: bytes(bundle.commit) }
    assert.deepEqual(await tcp.call({ ...base, ratchet_tree: bytes(bundle.ratchetTree) }), {
      type: 'Error', message: 'Failed to commit: ratchet_tree is only accepted together with group_info', code: 'bad_request',
    })
    assert.deepEqual(await tcp.call({ ...base, welcome_recipients: ['bob'] }), {
      type: 'Error', message: 'Failed to commit: welcome_recipients is only accepted together with welcome', code: 'bad_request',
    })
    const notWelcome = await tcp.call({ ...base, welcome: bytes(bundle.groupInfo) })
    assert.deepEqual([notWelcome.code, notWelcome.message], ['invalid_message', 'Failed to commit: welcome: the bytes are not an MLS Welcome'])
    // None of the refused bundles moved the group on.
    assert.deepEqual(await tcp.commit('cb-a', 'alice', bundle), { type: 'CommitResponse', group_id: 'cb-a', seq: 1, epoch: 1, message_type: 'Commit' })
    const missing = await tcp.call({ type: 'CommitBundle', group_id: 'cb-a', sender_id: 'alice' })
    assert.deepEqual(missing, { type: 'Error', message: 'Invalid message format: missing field `commit`' })
  })

  it('GetGroupInfo answers the GroupInfo of the latest epoch; ReadWelcomes reads an inbox page by page', async () => {
    const alice = await mlsGroup('gi')
    assert.deepEqual(await tcp.groupInfo('gi'), { type: 'Error', message: 'Failed to get group info: No GroupInfo stored for group: gi', code: 'group_info_not_found' })
    assert.deepEqual(await tcp.groupInfo('gi-nope'), { type: 'Error', message: 'Failed to get group info: Group not found: gi-nope', code: 'group_not_found' })
    const bob = await MlsTestClient.create('gi-bob')
    await tcp.storeKeyPackages('gi-bob', [(await bob.createKeyPackage()).bytes, (await bob.createKeyPackage()).bytes])
    const add = await alice.addMembers([await tcp.claimBytes('gi-bob')])
    assert.equal((await tcp.commit('gi', 'alice', add)).epoch, 1)
    assert.deepEqual(await tcp.groupInfo('gi'), { type: 'GroupInfoResponse', group_id: 'gi', epoch: 1, group_info: bytes(add.groupInfo), ratchet_tree: bytes(add.ratchetTree) })
    const update = await alice.selfUpdate()
    assert.equal((await tcp.commit('gi', 'alice', update, { omit: ['ratchet_tree'] })).epoch, 2)
    assert.deepEqual(await tcp.groupInfo('gi'), { type: 'GroupInfoResponse', group_id: 'gi', epoch: 2, group_info: bytes(update.groupInfo), ratchet_tree: null })

    // A second Welcome for the same client, routed by the names the committer gives.
    await mlsGroup('gi-2', 'carol').then(async (carol) => {
      await tcp.call({ type: 'JoinGroup', group_id: 'gi-2', client_id: 'carol' })
      const second = await carol.addMembers([await tcp.claimBytes('gi-bob')])
      assert.equal((await tcp.commit('gi-2', 'carol', second, { welcome_recipients: ['gi-bob'] })).type, 'CommitResponse')
    })
    const all = await tcp.call({ type: 'ReadWelcomes', client_id: 'gi-bob' })
    assert.equal(all.type, 'WelcomesResponse')
    assert.equal(all.client_id, 'gi-bob')
    assert.deepEqual(all.welcomes.map((w: { seq: number; group_id: string; sender_id: string }) => [w.seq, w.group_id, w.sender_id]), [[1, 'gi', 'alice'], [2, 'gi-2', 'carol']])
    assert.deepEqual(all.welcomes[0].welcome, bytes(add.welcome!))
    assert.match(all.welcomes[0].received_at, /^\d{4}-\d{2}-\d{2}T/)
    assert.deepEqual((await tcp.call({ type: 'ReadWelcomes', client_id: 'gi-bob', after: 1, limit: 1 })).welcomes.map((w: { seq: number }) => w.seq), [2])
    assert.deepEqual((await tcp.call({ type: 'ReadWelcomes', client_id: 'nobody' })).welcomes, [])
    const badLimit = await tcp.call({ type: 'ReadWelcomes', client_id: 'gi-bob', limit: 0 })
    assert.deepEqual(badLimit, { type: 'Error', message: 'Invalid message format: invalid value: integer `0` at field `limit` (must be >= 1)' })
  })

  it('ReadWelcomes bounds one answer by the message size limit, always returning at least one', async () => {
    const h = await startServer({ maxMessageBytes: 700 })
    try {
      const bob = await MlsTestClient.create('bob')
      for (let i = 0; i < 4; i++) {
        const alice = await MlsTestClient.create('alice')
        await alice.createGroup(`w${i}`)
        await h.service.createGroup(`w${i}`, 'alice')
        const add = await alice.addMembers([(await bob.createKeyPackage()).bytes])
        await h.service.commit({ groupId: `w${i}`, senderId: 'alice', commit: add.commit, welcome: add.welcome, welcomeRecipients: ['bob'] })
      }
      const sizes = (await h.service.readWelcomes('bob')).map((w) => w.data.length)
      let fit = 0
      for (let used = 0; fit < sizes.length && used + sizes[fit]! <= 700; fit++) used += sizes[fit]!
      assert.ok(fit >= 1 && fit < 4, `${sizes}`)
      const first = await request(h.port, { type: 'ReadWelcomes', client_id: 'bob' })
      assert.equal(first.welcomes.length, fit)
      const rest = await request(h.port, { type: 'ReadWelcomes', client_id: 'bob', after: first.welcomes.at(-1).seq })
      assert.equal(rest.welcomes[0].seq, fit + 1)
    } finally {
      await h.close()
    }
  })

  it('CreateGroup accepts the epoch the MLS group is at', async () => {
    assert.deepEqual(await tcp.createGroup('at-5', 'alice', 5), { type: 'GroupResponse', group_id: 'at-5', members: ['alice'] })
    assert.equal((await tcp.getGroup('at-5')).epoch, 5)
    const bad = await tcp.call({ type: 'CreateGroup', group_id: 'at-x', creator_id: 'a', epoch: -1 })
    assert.match(bad.message, /^Invalid message format: invalid value: integer `-1` at field `epoch`/)
  })

  it('answers the new response types sent as requests with "Invalid message type for server"', async () => {
    for (const type of ['KeyPackageCountResponse', 'CommitResponse', 'WelcomesResponse', 'GroupInfoResponse']) {
      assert.deepEqual(await tcp.call({ type }), { type: 'Error', message: 'Invalid message type for server' }, type)
    }
  })

  it('shares KeyPackages across doors: stored over one, claimed over the other, byte for byte', async () => {
    const client = await MlsTestClient.create('x-door')
    const viaTcp = await client.createKeyPackage()
    await tcp.storeKeyPackages('x-door', [viaTcp.bytes])
    const claimed = await rest.claim('x-door', 1)
    assert.equal(claimed.status, 200)
    assert.deepEqual([unb64(claimed.body.key_package), claimed.body.key_package_ref], [viaTcp.bytes, viaTcp.ref])

    const viaRest = await client.createKeyPackage()
    assert.equal((await rest.putKeyPackages('x-door', [viaRest.bytes])).status, 200)
    const answer = await tcp.fetchKeyPackage('x-door')
    assert.deepEqual([answer.key_package, answer.key_package_ref], [bytes(viaRest.bytes), viaRest.ref])
    assert.equal((await rest.claim('x-door')).status, 404)
  })

  it('routes a Welcome of a commit sent over one door to the inbox read over the other', async () => {
    const [alice, bob, carol] = await Promise.all(['xa', 'xb', 'xc'].map((n) => MlsTestClient.create(n)))
    await alice!.createGroup('x-group')
    await tcp.createGroup('x-group', 'xa')
    await tcp.storeKeyPackages('xb', [(await bob!.createKeyPackage()).bytes])
    await tcp.storeKeyPackages('xc', [(await carol!.createKeyPackage()).bytes])

    // Commit over TCP, Welcome read over REST.
    const addBob = await alice!.addMembers([await tcp.claimBytes('xb')])
    assert.equal((await tcp.commit('x-group', 'xa', addBob)).epoch, 1)
    const [welcome] = await rest.welcomes('xb')
    assert.deepEqual([welcome?.group_id, welcome?.welcome], ['x-group', b64(addBob.welcome!)])
    await bob!.joinFromWelcome(unb64(welcome!.welcome), addBob.ratchetTree)

    // Commit over REST, Welcome read over TCP.
    const addCarol = await alice!.addMembers([await rest.claimBytes('xc')])
    const reply = await rest.commit('x-group', 'xa', addCarol)
    assert.equal(reply.status, 201, JSON.stringify(reply.body))
    const welcomes = await tcp.welcomes('xc')
    assert.deepEqual(welcomes.map((w) => [w.group_id, w.sender_id]), [['x-group', 'xa']])
    await carol!.joinFromWelcome(Uint8Array.from(welcomes[0]!.welcome), addCarol.ratchetTree)
    await bob!.receive(addCarol.commit)
    assert.equal(carol!.epoch, 2n)
    assert.deepEqual(bob!.epochAuthenticator(), carol!.epochAuthenticator())
  })
})
