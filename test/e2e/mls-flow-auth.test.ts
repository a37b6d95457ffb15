import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { WebSocket } from 'ws'
import { MlsTestClient } from '../helpers/mls-client.js'
import { assertAgreement } from '../helpers/mls-agreement.js'
import { b64, RestApi, RestMember, unb64 } from '../helpers/rest-api.js'
import { useTestService } from '../helpers/service.js'
import { JwksIssuer } from '../helpers/tokens.js'
import { connect, LineReader } from '../tcp/helpers.js'

/**
 * A group's life with AUTH=jwt and an identity provider publishing ES256 keys: real ts-mls
 * clients, each calling with its own token. Members do everything they did without tokens;
 * an authenticated outsider can claim a KeyPackage and nothing else of theirs.
 */
describe('MLS over REST with bearer tokens (AUTH=jwt, JWKS)', () => {
  let issuer: JwksIssuer
  before(async () => {
    issuer = await JwksIssuer.start()
  })
  after(() => issuer.stop())
  const service = useTestService({
    auth: 'jwt',
    get authJwksUrl() {
      return issuer.url
    },
    authJwtIssuer: 'https://id.example.com',
  })
  const token = (client: string) => issuer.sign(client, { issuer: 'https://id.example.com' })

  test('alice adds bob with his KeyPackage; they talk; eve, signed in, reads and sends nothing of theirs', async () => {
    const group = 'private team'
    const api = async (client: string) => service.api.as(await token(client))
    const alice = new RestMember(await MlsTestClient.create('alice'), await api('alice'), group)
    const bob = new RestMember(await MlsTestClient.create('bob'), await api('bob'), group)
    const eve = await api('eve')

    const kp = await bob.client.createKeyPackage()
    assert.equal((await eve.putKeyPackages('bob', [kp.bytes])).status, 403, 'eve cannot fill bob\'s pool')
    assert.equal((await bob.api.putKeyPackages('bob', [kp.bytes])).status, 200)
    assert.equal((await service.api.claim('bob')).status, 401, 'no token, no claim')

    await alice.client.createGroup(group)
    assert.equal((await eve.createGroup(group, 'alice')).status, 403, 'eve cannot create it in alice\'s name')
    assert.equal((await alice.api.createGroup(group, 'alice')).status, 201)
    const add = await alice.client.addMembers([await alice.api.claimBytes('bob')])
    const committed = await alice.commit(add)
    assert.equal(committed.status, 201, JSON.stringify(committed.body))

    assert.equal((await eve.call('GET', `/clients/bob/welcomes`)).status, 403, 'bob\'s Welcome is his')
    await bob.joinFromInbox()
    await assertAgreement([alice.client, bob.client], 'e2e-auth')

    // Bob streams his queue with the token in the query, as a browser would.
    const ws = new WebSocket(`${service.api.base.replace(/^http/, 'ws')}/clients/bob/stream?access_token=${await token('bob')}`)
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    const frame = new Promise<Record<string, unknown>>((resolve) => ws.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as Record<string, unknown>
      if (parsed.message_type === 'Application') resolve(parsed)
    }))
    assert.equal((await alice.say('only for bob')).status, 201)
    const delivered = await frame
    ws.close()
    const received = await bob.client.receive(unb64(delivered.message as string))
    assert.equal(received.kind === 'application' && received.text, 'only for bob')

    // Eve is signed in, but not a member, and cannot speak for one.
    const sent = await eve.send(group, 'alice', await alice.client.sendApplication('forged?'))
    assert.equal(sent.status, 403)
    assert.equal(sent.body.error, 'forbidden')
    assert.equal((await eve.call('GET', `/groups/${encodeURIComponent(group)}/messages`)).status, 403)
    assert.equal((await eve.call('GET', '/clients/bob/messages')).status, 403)
    const spoofedCommit = await eve.call('POST', `/groups/${encodeURIComponent(group)}/commits`, { sender_id: 'alice', commit: b64(add.commit) })
    assert.equal(spoofedCommit.status, 403)

    // The log holds exactly what members sent, and bob reads it with his own token.
    const log = await bob.api.messages(group)
    assert.deepEqual(log.map((m) => [m.sender_id, m.message_type]), [['alice', 'Commit'], ['alice', 'Application']])
    // The TCP door takes the same tokens and answers the same facts.
    const ask = async (client: string, requests: unknown[]) => {
      const socket = await connect(service.running.tcpPort!)
      try {
        const reader = new LineReader(socket)
        socket.write([{ type: 'Authenticate', token: await token(client) }, ...requests].map((r) => JSON.stringify(r)).join('\n') + '\n')
        const answers = []
        for (let i = 0; i <= requests.length; i++) answers.push(await reader.next())
        return answers
      } finally {
        socket.destroy()
      }
    }
    const [, bobsLog] = await ask('bob', [{ type: 'ReadMessages', group_id: group }])
    assert.deepEqual(bobsLog.messages.map((m: { message: number[] }) => b64(Uint8Array.from(m.message))), log.map((m) => m.message))
    const [, evesRead, evesRelay] = await ask('eve', [{ type: 'ReadMessages', group_id: group }, { type: 'RelayMessage', group_id: group, sender_id: 'alice', message: [1, 2, 3], message_type: 'Application' }])
    assert.equal(evesRead.code, 'forbidden')
    assert.equal(evesRelay.code, 'forbidden')
    assert.equal((await bob.api.messages(group)).length, 2, 'nothing stored for eve')

    // A token of the right issuer but signed by another key is refused.
    const stranger = await JwksIssuer.start()
    try {
      const forged = await new RestApi(Number(new URL(service.api.base).port), await stranger.sign('alice', { issuer: 'https://id.example.com' })).messages(group).catch((err: Error) => err)
      assert.ok(forged instanceof Error && /401/.test(forged.message), String(forged))
    } finally {
      await stranger.stop()
    }
  })
})
