import assert from 'node:assert/strict'
import type { Store } from '../../src/storage/store.js'

/**
 * What a store opened on a version-1 database must do once migrated, whatever the database:
 * the version-1 file held a handed-out ref 'old-ref' of bob and two Welcomes (seqs 1 and 2, in
 * group g) for carol, written at `at` (unix ms). Old refs route for a week; old Welcomes keep their
 * seqs and new ones follow them.
 */
export async function assertUpgradedFromVersion1(store: Store, at: number): Promise<void> {
  const now = Math.floor(at / 1000)
  assert.equal((await store.keyPackageOwners(['old-ref'], now)).get('old-ref'), 'bob')
  assert.equal((await store.keyPackageOwners(['old-ref'], now + 8 * 86400)).size, 0)
  assert.deepEqual((await store.readWelcomes('carol', 0, 10, at)).map((w) => w.seq), [1, 2])
  await store.createGroup({ groupId: 'h', creatorId: 'alice', epoch: 0, createdAt: at })
  await store.appendMessage('h', { senderId: 'alice', messageType: 'Commit', data: new Uint8Array([1]), receivedAt: at, epoch: null, contentType: null },
    { senderMustBeMember: true }, { welcome: { data: new Uint8Array([2]), recipients: ['carol'] } })
  assert.deepEqual((await store.readWelcomes('carol', 0, 10, at)).map((w) => [w.seq, w.groupId]), [[1, 'g'], [2, 'g'], [3, 'h']])
}
