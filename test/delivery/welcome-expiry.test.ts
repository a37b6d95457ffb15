import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { isServiceError } from '../../src/errors.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { silentLogger } from '../helpers/app.js'
import { MlsTestClient } from '../helpers/mls-client.js'

/** The service's clock, not the wall clock, decides when a handed-out KeyPackageRef stops routing Welcomes. */
test('a Welcome for a claimed KeyPackage routes while it is valid and not after it expired (service clock)', async () => {
  let clock = Date.now()
  const service = new DeliveryService({ store: new MemoryStore(), log: silentLogger, now: () => clock })
  const nowSeconds = Math.floor(clock / 1000)
  const alice = await MlsTestClient.create('alice')
  const bob = await MlsTestClient.create('bob')
  const carol = await MlsTestClient.create('carol')
  const hour = { notBefore: nowSeconds - 60, notAfter: nowSeconds + 3600 }
  await service.storeKeyPackages('bob', [(await bob.createKeyPackage({ lifetime: hour })).bytes])
  await service.storeKeyPackages('carol', [(await carol.createKeyPackage({ lifetime: hour })).bytes])
  await alice.createGroup('expiry')
  await service.createGroup('expiry', 'alice')

  // Within the hour: bob's Welcome is routed by its ref.
  const addBob = await alice.addMembers([(await service.fetchKeyPackage('bob'))!.data])
  await service.commit({ groupId: 'expiry', senderId: 'alice', commit: addBob.commit, welcome: addBob.welcome })
  assert.equal((await service.readWelcomes('bob')).length, 1)

  // Carol's package is claimed now, but the Welcome comes two hours later: its ref no longer routes.
  const carolsPackage = (await service.fetchKeyPackage('carol'))!.data
  clock += 2 * 3600_000
  const addCarol = await alice.addMembers([carolsPackage])
  await assert.rejects(
    service.commit({ groupId: 'expiry', senderId: 'alice', commit: addCarol.commit, welcome: addCarol.welcome }),
    (err: unknown) => isServiceError(err) && err.code === 'invalid_message' && err.details.check === 'unknown_key_package_ref',
  )
  assert.equal((await service.readWelcomes('carol')).length, 0)
  assert.equal((await service.getGroup('expiry')).epoch, 1, 'the refused bundle changed nothing')
})
