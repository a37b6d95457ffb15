import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { compareIds } from '../../../src/storage/id-order.js'
import type { AppendResult, Store } from '../../../src/storage/store.js'
import { HOSTILE_IDS, MEMBER, bytes, groupWith, keyPackage, message, openStore, text, T0, type StoreFactory, logOf } from './fixtures.js'

const NOW = T0 / 1000
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const NOTHING = { groups: 0, keyPackages: 0, deliveries: 0, welcomes: 0 }

/** A client's queue, read from the start: the seqs in it, whether a gap is reported, its last seq. */
async function queueOf(store: Store, clientId: string): Promise<{ seqs: number[]; gap: boolean; lastSeq: number }> {
  const page = await store.readDeliveries(clientId, 0, 1000, T0)
  return { seqs: page.deliveries.map((d) => d.seq), gap: page.gap !== undefined, lastSeq: page.lastSeq }
}

/** A commit by `sender` at the group's epoch that routes a Welcome to `recipients` (they join). */
function welcomeInto(store: Store, groupId: string, sender: string, epoch: number, recipients: string[]): Promise<AppendResult> {
  return store.appendMessage(
    groupId,
    message(sender, `commit ${groupId} ${epoch}`, { messageType: 'Commit', epoch, contentType: 'commit' }),
    { ...MEMBER, epoch: { expected: epoch, advance: true } },
    { welcome: { data: bytes(`welcome to ${groupId}`), recipients } },
  )
}

export function clientContract(factory: StoreFactory): void {
  describe("a client's groups, and deleting a client", () => {
    test('lists the groups a client is in, in id order, however it joined or left', async (t) => {
      const store = await openStore(t, factory)
      assert.deepEqual(await store.listClientGroups('bob'), [])
      await groupWith(store, 'b-created', ['bob'])
      await groupWith(store, 'a-added', ['alice', 'bob'])
      await groupWith(store, 'c-welcomed', ['alice'])
      assert.ok((await welcomeInto(store, 'c-welcomed', 'alice', 0, ['bob'])).ok)
      await groupWith(store, 'd-joined-by-commit', ['alice'])
      assert.ok((await store.appendMessage('d-joined-by-commit', message('bob', 'external commit'), { senderMustBeMember: false }, { senderJoins: true })).ok)
      await groupWith(store, 'e-left', ['alice', 'bob'])
      assert.equal(await store.removeMember('e-left', 'bob'), 'removed')
      await groupWith(store, 'f-deleted', ['alice', 'bob'])
      assert.equal(await store.deleteGroup('f-deleted'), true)
      await groupWith(store, 'g-others', ['alice', 'carol'])
      assert.deepEqual(await store.listClientGroups('bob'), ['a-added', 'b-created', 'c-welcomed', 'd-joined-by-commit'])
      assert.deepEqual(await store.listClientGroups('carol'), ['g-others'])
      assert.deepEqual(await store.listClientGroups('alice'), ['a-added', 'c-welcomed', 'd-joined-by-commit', 'e-left', 'g-others'])
      assert.deepEqual(await store.listClientGroups('nobody'), [])
    })

    test('pages: after a group id, at most limit, in code point order (also above U+FFFF)', async (t) => {
      const store = await openStore(t, factory)
      // UTF-16 order would put the emoji (a surrogate pair) before U+E000; code point order puts it last.
      const ids = ['b', 'a', '\u{E000}', 'ab', '😀', 'B', ...range(12).map((i) => `g${String(i).padStart(2, '0')}`)]
      for (const id of ids) await groupWith(store, id, ['bob'])
      const sorted = [...ids].sort(compareIds)
      assert.deepEqual(sorted.slice(-2), ['\u{E000}', '😀'])
      assert.deepEqual(await store.listClientGroups('bob'), sorted)
      const pages: string[][] = []
      let after: string | undefined
      for (;;) {
        const page = await store.listClientGroups('bob', { after, limit: 5 })
        if (page.length === 0) break
        pages.push(page)
        after = page.at(-1)
      }
      assert.deepEqual(pages.map((p) => p.length), [5, 5, 5, 3])
      assert.deepEqual(pages.flat(), sorted)
      assert.deepEqual(await store.listClientGroups('bob', { after: 'g05', limit: 2 }), ['g06', 'g07'])
      assert.deepEqual(await store.listClientGroups('bob', { after: 'zzz' }), ['\u{E000}', '😀'], 'a cursor that is not a group of it')
    })

    test('deleting a client: it leaves every group, loses its KeyPackages, refs, queue and Welcomes; others keep theirs', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g1', ['alice', 'bob', 'carol'])
      await groupWith(store, 'g2', ['bob', 'alice'])
      await groupWith(store, 'g3', ['alice'])
      await store.addKeyPackages('bob', [keyPackage(), keyPackage(), keyPackage({ lastResort: true }), keyPackage({ legacy: true, ciphersuite: null })], NOW)
      await store.addKeyPackages('carol', [keyPackage(), keyPackage()], NOW)
      const bobs = await store.claimKeyPackage('bob', { now: NOW })
      const carols = await store.claimKeyPackage('carol', { now: NOW })
      for (let i = 1; i <= 3; i++) await store.appendMessage('g1', message('alice', `g1 m${i}`), MEMBER)
      await store.appendMessage('g2', message('bob', 'from bob'), MEMBER)
      assert.ok((await welcomeInto(store, 'g3', 'alice', 0, ['bob'])).ok)
      await store.ackDeliveries('bob', 1)
      const before = await store.readDeliveries('bob', 0, 100, T0)
      assert.deepEqual(before.deliveries.map((d) => d.seq), [2, 3, 4])
      assert.equal((await store.readWelcomes('bob', 0, 100, T0)).length, 1)

      assert.deepEqual(await store.deleteClient('bob', NOW), { groups: 3, keyPackages: 3, deliveries: 3, welcomes: 1 })

      assert.deepEqual(await store.listClientGroups('bob'), [])
      assert.deepEqual((await store.getGroup('g1'))?.members, ['alice', 'carol'])
      assert.deepEqual((await store.getGroup('g2'))?.members, ['alice'], 'the group stays, with its creator gone from it')
      assert.equal((await store.getGroup('g2'))?.creatorId, 'bob')
      assert.deepEqual((await logOf(store, 'g2', 0, 10))?.map((m) => [m.senderId, text(m.data)]), [['bob', 'from bob']], 'what it sent stays in the log')
      assert.equal((await store.countKeyPackages('bob', NOW)).total, 0)
      assert.equal(await store.claimKeyPackage('bob', { now: NOW }), undefined)
      assert.deepEqual([...await store.keyPackageOwners([bobs!.ref, carols!.ref], NOW)], [[carols!.ref, 'carol']], 'its handed-out refs route nothing')
      assert.equal((await store.countKeyPackages('carol', NOW)).total, 1)
      assert.deepEqual(await store.listKeyPackageClients(NOW), ['carol'])
      assert.deepEqual(await queueOf(store, 'bob'), { seqs: [], gap: false, lastSeq: 4 }, 'emptied, no gap, seqs kept')
      assert.deepEqual(await store.readWelcomes('bob', 0, 100, T0), [])
      assert.deepEqual(await store.ackDeliveries('bob', 4), { ok: true, ackedUpTo: 4, remaining: 0 })
      assert.deepEqual((await store.readDeliveries('carol', 0, 100, T0)).deliveries.map((d) => text(d.data)), ['g1 m1', 'g1 m2', 'g1 m3'])

      // Messages after the delete do not reach it; added again, its seqs go on from where they were.
      const next = await store.appendMessage('g1', message('alice', 'after'), MEMBER)
      assert.ok(next.ok)
      assert.deepEqual([...next.recipients], ['carol'])
      assert.deepEqual(await queueOf(store, 'bob'), { seqs: [], gap: false, lastSeq: 4 })
      assert.ok((await welcomeInto(store, 'g1', 'alice', 0, ['bob'])).ok)
      assert.deepEqual((await store.readDeliveries('bob', 0, 100, T0)).deliveries.map((d) => [d.seq, d.kind]), [[5, 'welcome']])
      assert.deepEqual((await store.readWelcomes('bob', 0, 100, T0)).map((w) => [w.seq, w.groupId]), [[2, 'g1']])
      assert.deepEqual(await store.listClientGroups('bob'), ['g1'])

      assert.deepEqual(await store.deleteClient('bob', NOW), { groups: 1, keyPackages: 0, deliveries: 1, welcomes: 1 })
      assert.deepEqual(await store.deleteClient('bob', NOW), NOTHING, 'again: nothing left')
      assert.deepEqual(await store.deleteClient('nobody', NOW), NOTHING)
      assert.deepEqual(await queueOf(store, 'nobody'), { seqs: [], gap: false, lastSeq: 0 })
    })

    test('hostile ids are plain strings', async (t) => {
      const store = await openStore(t, factory)
      for (const id of HOSTILE_IDS) {
        await groupWith(store, id, [id, 'peer'])
        await store.addKeyPackages(id, [keyPackage()], NOW)
        await store.appendMessage(id, message('peer', 'hello'), MEMBER)
      }
      for (const id of HOSTILE_IDS) assert.deepEqual(await store.listClientGroups(id), [id], id)
      assert.deepEqual(await store.listClientGroups('peer'), [...HOSTILE_IDS].sort(compareIds))
      assert.deepEqual(await store.listClientGroups('toString'), [])
      assert.deepEqual(await store.deleteClient('__proto__', NOW), { groups: 1, keyPackages: 1, deliveries: 1, welcomes: 0 })
      assert.deepEqual(await store.deleteClient('constructor', NOW), { groups: 1, keyPackages: 1, deliveries: 1, welcomes: 0 })
      assert.deepEqual(await store.deleteClient('hasOwnProperty', NOW), { groups: 1, keyPackages: 1, deliveries: 1, welcomes: 0 })
      assert.deepEqual(await store.deleteClient('valueOf', NOW), NOTHING)
      assert.deepEqual((await store.getGroup("o'brien"))?.members, ["o'brien", 'peer'])
      assert.deepEqual((await store.getGroup('__proto__'))?.members, ['peer'])
    })

    test('a delete racing appends to its groups: each delivery is erased or never made, so its queue ends empty', async (t) => {
      const store = await openStore(t, factory)
      const groups = range(6).map((i) => `g${i}`)
      for (const g of groups) await groupWith(store, g, [`${g}-sender`, 'bob', 'carol'])
      const perGroup = 25
      let deletion: ReturnType<Store['deleteClient']> | undefined
      const appends = groups.flatMap((g) => range(perGroup).map(async (i) => {
        // The delete starts in the middle of the appends.
        if (g === 'g3' && i === 0) deletion = store.deleteClient('bob', NOW)
        return store.appendMessage(g, message(`${g}-sender`, `${g}:${i}`), MEMBER)
      }))
      const results = await Promise.all(appends)
      const deleted = await deletion!
      assert.equal(deleted.groups, groups.length)
      const toBob = results.filter((r) => r.ok && r.recipients.includes('bob')).length
      assert.equal(deleted.deliveries, toBob, 'every delivery made to it was in its queue when it was erased')
      assert.deepEqual(await queueOf(store, 'bob'), { seqs: [], gap: false, lastSeq: toBob })
      assert.deepEqual(await store.listClientGroups('bob'), [])
      assert.equal((await store.readDeliveries('carol', 0, 1000, T0)).deliveries.length, groups.length * perGroup)
    })

    test('a delete racing joins, Welcomes and appends: each group it ends in has all it got since joining, the others nothing', async (t) => {
      const store = await openStore(t, factory)
      const groups = range(8).map((i) => `j${i}`)
      for (const g of groups) await groupWith(store, g, [`${g}-sender`])
      const results = new Map<string, AppendResult[]>(groups.map((g) => [g, []]))
      let deletion: ReturnType<Store['deleteClient']> | undefined
      await Promise.all(groups.flatMap((g, gi) => range(12).map(async (i) => {
        if (gi === 4 && i === 0) deletion = store.deleteClient('bob', NOW)
        const sender = `${g}-sender`
        let result: AppendResult
        if (i !== 4) result = await store.appendMessage(g, message(sender, `${g}:${i}`), MEMBER)
        else if (gi % 2 === 0) {
          // Even groups: bob joins by a Welcome (a commit that routes it)...
          result = await store.appendMessage(g, message(sender, `${g}:welcome`, { messageType: 'Commit', epoch: 0, contentType: 'commit' }),
            { ...MEMBER, epoch: { expected: 0, advance: true } }, { welcome: { data: bytes(`welcome ${g}`), recipients: ['bob'] } })
        } else {
          // ...odd ones by a plain join.
          await store.addMember(g, 'bob')
          return
        }
        results.get(g)!.push(result)
      })))
      await deletion
      const queue = (await store.readDeliveries('bob', 0, 1000, T0)).deliveries
      const member = new Set(await store.listClientGroups('bob'))
      for (const g of groups) {
        const queued = queue.filter((d) => d.groupId === g).length
        const sent = results.get(g)!.filter((r) => r.ok && r.recipients.includes('bob')).length
        if (member.has(g)) assert.equal(queued, sent, `${g}: joined after the delete, it keeps all ${sent} it got`)
        else assert.equal(queued, 0, `${g}: joined before the delete, all it got is erased`)
      }
      const welcomes = await store.readWelcomes('bob', 0, 100, T0)
      assert.deepEqual(welcomes.map((w) => w.groupId).sort(), groups.filter((g, i) => i % 2 === 0 && member.has(g)).sort(), 'a Welcome is kept exactly where its join is')
    })

    test('claims racing a delete: no ref handed out before it routes anything after it', async (t) => {
      const store = await openStore(t, factory)
      await store.addKeyPackages('bob', [keyPackage({ lastResort: true }), ...range(5).map(() => keyPackage())], NOW)
      let deletion: ReturnType<Store['deleteClient']> | undefined
      const claims = await Promise.all(range(40).map(async (i) => {
        if (i === 20) deletion = store.deleteClient('bob', NOW)
        return store.claimKeyPackage('bob', { now: NOW })
      }))
      await deletion
      const refs = [...new Set(claims.filter((c) => c !== undefined).map((c) => c.ref))]
      assert.ok(refs.length > 0)
      assert.deepEqual([...await store.keyPackageOwners(refs, NOW)], [])
      assert.equal(await store.claimKeyPackage('bob', { now: NOW }), undefined)
    })

    test('a Welcome routed by refs is refused, changing nothing, when a recipient was deleted after the refs were read', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['alice'])
      await store.addKeyPackages('bob', [keyPackage()], NOW)
      await store.addKeyPackages('carol', [keyPackage()], NOW)
      const bobs = (await store.claimKeyPackage('bob', { now: NOW }))!
      const carols = (await store.claimKeyPackage('carol', { now: NOW }))!
      const refs = await store.keyPackageOwners([bobs.ref, carols.ref], NOW)
      assert.deepEqual([...refs], [[bobs.ref, 'bob'], [carols.ref, 'carol']])
      await store.deleteClient('bob', NOW)
      const commit = (label: string) => message('alice', label, { messageType: 'Commit', epoch: 0, contentType: 'commit' })
      const condition = { ...MEMBER, epoch: { expected: 0, advance: true } }
      const refused = await store.appendMessage('g', commit('adds bob and carol'), condition, { welcome: { data: bytes('welcome'), recipients: ['bob', 'carol'], refs } })
      assert.deepEqual(refused, { ok: false, reason: 'unknown_ref', ref: bobs.ref })
      const group = await store.getGroup('g')
      assert.deepEqual([group?.members, group?.epoch, group?.nextSeq], [['alice'], 0, 1])
      assert.deepEqual(await store.readWelcomes('bob', 0, 10, T0), [])
      assert.deepEqual(await store.readWelcomes('carol', 0, 10, T0), [])
      const onlyCarol = new Map([[carols.ref, 'carol']])
      const routed = await store.appendMessage('g', commit('adds carol'), condition, { welcome: { data: bytes('welcome'), recipients: ['carol'], refs: onlyCarol } })
      assert.ok(routed.ok && routed.seq === 1)
      assert.deepEqual((await store.getGroup('g'))?.members, ['alice', 'carol'])
    })

    test('the KeyPackages counted are those it could still hand out; the expired go too', async (t) => {
      const store = await openStore(t, factory)
      await store.addKeyPackages('bob', [...range(20).map(() => keyPackage({ notAfter: NOW - 10 })), keyPackage(), keyPackage({ lastResort: true })], NOW)
      await store.claimKeyPackage('bob', { now: NOW })
      assert.deepEqual(await store.deleteClient('bob', NOW), { groups: 0, keyPackages: 1, deliveries: 0, welcomes: 0 })
      assert.equal(await store.claimKeyPackage('bob', { now: NOW - 100 }), undefined, 'the expired ones are gone too')
    })
  })
}
