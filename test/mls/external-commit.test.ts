import assert from 'node:assert/strict'
import { test } from 'node:test'
import { verifyExternalCommit } from '../../src/mls/index.js'
import { MlsTestClient } from '../helpers/mls-client.js'

/** alice's group at epoch 1, with the GroupInfo she published for it, and carol's external commit from it. */
async function joining() {
  const alice = await MlsTestClient.create('alice')
  await alice.createGroup('room-x')
  const update = await alice.selfUpdate()
  const carol = await MlsTestClient.create('carol')
  const join = await carol.joinExternal(update.groupInfo, update.ratchetTree)
  return { alice, update, join }
}

test('an external commit verifies against the GroupInfo of its epoch, framed or bare', async () => {
  const { update, join } = await joining()
  await verifyExternalCommit(join.commit, update.groupInfo)
  await verifyExternalCommit(join.commit, update.groupInfo.subarray(4))
})

test('refused: against the GroupInfo of another epoch or group, a member\'s commit, a PrivateMessage', async () => {
  const { alice, update, join } = await joining()
  await assert.rejects(verifyExternalCommit(join.commit, join.groupInfo), (err: Error & { check?: string }) => err.check === 'external_commit' && /epoch 2.*epoch 1/.test(err.message))
  const other = await MlsTestClient.create('olga')
  await other.createGroup('room-x')
  const otherUpdate = await other.selfUpdate()
  // Same group id and epoch, another group: its GroupContext is not the one signed.
  await assert.rejects(verifyExternalCommit(join.commit, otherUpdate.groupInfo), (err: Error & { check?: string }) => err.check === 'message_signature')
  const memberCommit = await alice.selfUpdate({ publicMessage: true })
  await assert.rejects(verifyExternalCommit(memberCommit.commit, update.groupInfo), (err: Error & { check?: string }) => err.check === 'external_commit')
  await assert.rejects(verifyExternalCommit(await alice.sendApplication('hi'), update.groupInfo), (err: Error & { check?: string }) => err.check === 'malformed')
})
