import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { keyPackage, openStore, text, T0, type StoreFactory } from './fixtures.js'

const NOW = T0 / 1000
/** In seconds, as KeyPackage times are. */
const HOUR = 3600

export function keyPackageContract(factory: StoreFactory): void {
  describe('KeyPackages', () => {
    test('add, count by ciphersuite, list clients sorted; unknown clients are empty', async (t) => {
      const store = await openStore(t, factory)
      assert.equal(await store.addKeyPackages('bob', [keyPackage(), keyPackage({ ciphersuite: 3 })], NOW), 2)
      assert.equal(await store.addKeyPackages('bob', [keyPackage({ lastResort: true }), keyPackage({ legacy: true, ciphersuite: null })], NOW), 4)
      assert.equal(await store.addKeyPackages('alice', [keyPackage()], NOW), 1)
      const count = await store.countKeyPackages('bob', NOW)
      assert.deepEqual({ ...count, byCiphersuite: [...count.byCiphersuite].sort() }, { total: 4, byCiphersuite: [[1, 2], [3, 1]], lastResort: 1, legacy: 1 })
      assert.deepEqual(await store.listKeyPackageClients(NOW), ['alice', 'bob'])
      const none = await store.countKeyPackages('nobody', NOW)
      assert.deepEqual({ ...none, byCiphersuite: [...none.byCiphersuite] }, { total: 0, byCiphersuite: [], lastResort: 0, legacy: 0 })
      assert.equal(await store.claimKeyPackage('nobody', { now: NOW }), undefined)
    })

    test('the list of clients: code point order on every store, in pages from a cursor, without expired pools', async (t) => {
      const store = await openStore(t, factory)
      // UTF-16 order would put the emoji (a surrogate pair) before U+FFFD; code point order, after.
      const ids = ['zoe', '\uFFFD', 'ünï 😀', 'ünï', 'Bob', 'a', '😀', 'ab', '\uE000']
      for (const id of ids) await store.addKeyPackages(id, [keyPackage()], NOW)
      await store.addKeyPackages('expired', [keyPackage({ notAfter: NOW + 1 })], NOW)
      const ordered = ['Bob', 'a', 'ab', 'zoe', 'ünï', 'ünï 😀', '\uE000', '\uFFFD', '😀']
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2), ordered)
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2, { limit: 3 }), ['Bob', 'a', 'ab'])
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2, { after: 'ab', limit: 3 }), ['zoe', 'ünï', 'ünï 😀'])
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2, { after: 'ünï 😀' }), ['\uE000', '\uFFFD', '😀'])
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2, { after: '\uFFFD', limit: 5 }), ['😀'])
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2, { after: '😀' }), [])
      // A cursor need not be a client that has KeyPackages.
      assert.deepEqual(await store.listKeyPackageClients(NOW + 2, { after: 'b', limit: 1 }), ['zoe'])
      assert.deepEqual(await store.listKeyPackageClients(NOW, { after: 'ab', limit: 2 }), ['expired', 'zoe'], 'not expired yet')
    })

    test('a claim hands out the oldest package once, with its exact bytes, and remembers the owner', async (t) => {
      const store = await openStore(t, factory)
      const first = keyPackage({ data: new Uint8Array([0, 255, 0, 1]) })
      const second = keyPackage()
      await store.addKeyPackages('bob', [first, second], NOW)
      assert.deepEqual(await store.claimKeyPackage('bob', { now: NOW }), first)
      assert.deepEqual(await store.claimKeyPackage('bob', { now: NOW }), second)
      assert.equal(await store.claimKeyPackage('bob', { now: NOW }), undefined)
      assert.deepEqual(await store.listKeyPackageClients(NOW), [])
      const owners = await store.keyPackageOwners([first.ref, 'unknown', second.ref], NOW)
      assert.deepEqual([...owners].sort(), [[first.ref, 'bob'], [second.ref, 'bob']])
    })

    test('the ciphersuite filter, and a re-uploaded ref replaces the package instead of adding one', async (t) => {
      const store = await openStore(t, factory)
      const one = keyPackage({ ciphersuite: 1 })
      const three = keyPackage({ ciphersuite: 3 })
      await store.addKeyPackages('bob', [one, three], NOW)
      assert.equal(await store.addKeyPackages('bob', [{ ...one, data: new Uint8Array([9]) }], NOW), 2)
      assert.equal(await store.claimKeyPackage('bob', { now: NOW, ciphersuite: 2 }), undefined)
      assert.deepEqual(await store.claimKeyPackage('bob', { now: NOW, ciphersuite: 3 }), three)
      assert.deepEqual((await store.claimKeyPackage('bob', { now: NOW }))?.data, new Uint8Array([9]))
    })

    test('a last-resort package goes out only when nothing else is left, and is kept', async (t) => {
      const store = await openStore(t, factory)
      const lastResort = keyPackage({ lastResort: true, label: 'last' })
      const normal = keyPackage({ label: 'normal' })
      await store.addKeyPackages('bob', [lastResort, normal], NOW)
      assert.equal(text((await store.claimKeyPackage('bob', { now: NOW }))!.data), 'normal')
      for (let i = 0; i < 3; i++) assert.deepEqual(await store.claimKeyPackage('bob', { now: NOW }), lastResort)
      assert.equal((await store.countKeyPackages('bob', NOW)).lastResort, 1)
      assert.equal((await store.keyPackageOwners([lastResort.ref], NOW)).get(lastResort.ref), 'bob')
    })

    test('keptOnly (a claim beyond the limit) hands out the last-resort package, else the legacy one, and never a one-time package', async (t) => {
      const store = await openStore(t, factory)
      const lastResort = keyPackage({ lastResort: true, label: 'last' })
      const oneTime = [keyPackage({ label: 'a' }), keyPackage({ label: 'b' })]
      await store.addKeyPackages('bob', [...oneTime, lastResort], NOW)
      for (let i = 0; i < 3; i++) assert.deepEqual(await store.claimKeyPackage('bob', { now: NOW, keptOnly: true }), lastResort)
      assert.equal((await store.countKeyPackages('bob', NOW)).total, 3, 'the one-time packages are all still there')
      assert.equal(await store.claimKeyPackage('bob', { now: NOW, keptOnly: true, ciphersuite: 3 }), undefined, 'no last-resort package of that suite')
      assert.equal(text((await store.claimKeyPackage('bob', { now: NOW }))!.data), 'a', 'an ordinary claim still takes the oldest one-time package')

      await store.addKeyPackages('carol', oneTime.map((k) => ({ ...k, ref: `${k.ref}-c` })), NOW)
      assert.equal(await store.claimKeyPackage('carol', { now: NOW, keptOnly: true }), undefined, 'nothing kept: nothing handed out')
      assert.equal((await store.countKeyPackages('carol', NOW)).total, 2)
      const legacy = keyPackage({ legacy: true, ciphersuite: null, label: 'legacy' })
      await store.addKeyPackages('carol', [legacy], NOW)
      assert.deepEqual(await store.claimKeyPackage('carol', { now: NOW, keptOnly: true }), legacy)
      assert.equal((await store.countKeyPackages('carol', NOW)).total, 3)
    })

    test('legacy: one per client, replaced by the next, handed out last, never consumed, never for a ciphersuite', async (t) => {
      const store = await openStore(t, factory)
      const old = keyPackage({ legacy: true, ciphersuite: null, label: 'old' })
      const replacement = keyPackage({ legacy: true, ciphersuite: null, label: 'new' })
      assert.equal(await store.addKeyPackages('bob', [old], NOW), 1)
      assert.equal(await store.addKeyPackages('bob', [replacement], NOW), 1)
      const normal = keyPackage({ label: 'mls' })
      await store.addKeyPackages('bob', [normal], NOW)
      assert.equal(text((await store.claimKeyPackage('bob', { now: NOW }))!.data), 'mls')
      for (let i = 0; i < 2; i++) assert.equal(text((await store.claimKeyPackage('bob', { now: NOW }))!.data), 'new')
      assert.equal(await store.claimKeyPackage('bob', { now: NOW, ciphersuite: 1 }), undefined)
      assert.equal((await store.countKeyPackages('bob', NOW)).legacy, 1)
      assert.equal((await store.keyPackageOwners([replacement.ref], NOW)).size, 0, 'legacy refs are not Welcome routes')
    })

    test('expired packages are never handed out, counted or listed', async (t) => {
      const store = await openStore(t, factory)
      const expired = keyPackage({ notAfter: NOW - 1 })
      const lastResortExpired = keyPackage({ notAfter: NOW - 1, lastResort: true })
      const valid = keyPackage({ notAfter: NOW })
      assert.equal(await store.addKeyPackages('bob', [expired, lastResortExpired, valid], NOW), 1)
      assert.equal(await store.addKeyPackages('carol', [keyPackage({ notAfter: NOW - 10 })], NOW), 0)
      assert.deepEqual(await store.listKeyPackageClients(NOW), ['bob'])
      assert.equal((await store.countKeyPackages('bob', NOW)).total, 1)
      assert.deepEqual(await store.claimKeyPackage('bob', { now: NOW }), valid)
      assert.equal(await store.claimKeyPackage('bob', { now: NOW }), undefined)
      assert.equal(await store.claimKeyPackage('carol', { now: NOW }), undefined)
      assert.equal((await store.keyPackageOwners([expired.ref], NOW)).size, 0)
    })

    test('a handed-out ref routes Welcomes until its KeyPackage expires; without a lifetime, for the queue max age', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 100, maxAgeMs: HOUR * 1000 } })
      const short = keyPackage({ notAfter: NOW + 100 })
      const unknown = keyPackage({ notAfter: null })
      const long = keyPackage({ notAfter: NOW + 100 * HOUR })
      await store.addKeyPackages('bob', [short, unknown, long], NOW)
      for (let i = 0; i < 3; i++) assert.ok(await store.claimKeyPackage('bob', { now: NOW }))
      const refs = [short.ref, unknown.ref, long.ref]
      const owners = async (now: number) => [...(await store.keyPackageOwners(refs, now)).keys()].sort()
      assert.deepEqual(await owners(NOW + 100), [...refs].sort(), 'notAfter itself is still valid')
      assert.deepEqual(await owners(NOW + 101), [unknown.ref, long.ref].sort(), 'expired before any purge')
      assert.deepEqual(await owners(NOW + HOUR), [unknown.ref, long.ref].sort(), 'an unknown lifetime: the claim + the queue max age')
      assert.deepEqual(await owners(NOW + HOUR + 1), [long.ref])

      // Later claims (which purge) keep expired refs out and fresh ones in.
      const later = NOW + 2 * HOUR
      const fresh = keyPackage({ notAfter: later + 10 })
      await store.addKeyPackages('carol', [fresh, keyPackage({ notAfter: later + 10 })], later)
      for (let i = 0; i < 2; i++) assert.ok(await store.claimKeyPackage('carol', { now: later }))
      const now = await store.keyPackageOwners([...refs, fresh.ref], later)
      assert.deepEqual([...now].sort(), [[fresh.ref, 'carol'], [long.ref, 'bob']].sort())
    })

    test('a last-resort ref handed out again is remembered from its latest claim, even after it had expired', async (t) => {
      const store = await openStore(t, factory, { retention: { maxMessages: 100, maxAgeMs: HOUR * 1000 } })
      const lastResort = keyPackage({ lastResort: true, notAfter: null })
      await store.addKeyPackages('bob', [lastResort], NOW)
      await store.claimKeyPackage('bob', { now: NOW })
      await store.claimKeyPackage('bob', { now: NOW + HOUR / 2 })
      assert.equal((await store.keyPackageOwners([lastResort.ref], NOW + HOUR + HOUR / 2)).get(lastResort.ref), 'bob')
      assert.equal((await store.keyPackageOwners([lastResort.ref], NOW + 2 * HOUR)).size, 0)
      await store.claimKeyPackage('bob', { now: NOW + 3 * HOUR })
      assert.equal((await store.keyPackageOwners([lastResort.ref], NOW + 4 * HOUR)).get(lastResort.ref), 'bob')
    })

    test('delete one by ref, or all of a client', async (t) => {
      const store = await openStore(t, factory)
      const a = keyPackage()
      const legacy = keyPackage({ legacy: true, ciphersuite: null })
      await store.addKeyPackages('bob', [a, keyPackage(), legacy], NOW)
      assert.equal(await store.deleteKeyPackage('bob', a.ref), true)
      assert.equal(await store.deleteKeyPackage('bob', a.ref), false)
      assert.equal(await store.deleteKeyPackage('alice', a.ref), false)
      assert.equal(await store.deleteKeyPackage('bob', legacy.ref), true)
      assert.equal((await store.countKeyPackages('bob', NOW)).total, 1)
      assert.equal(await store.deleteKeyPackages('bob'), 1)
      assert.equal(await store.deleteKeyPackages('bob'), 0)
      assert.deepEqual(await store.listKeyPackageClients(NOW), [])
    })
  })
}
