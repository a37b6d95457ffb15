import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { compareIds } from '../../../src/storage/id-order.js'
import type { AppendResult } from '../../../src/storage/store.js'
import { ANY_MEMBER, HOSTILE_IDS, MEMBER, bytes, groupWith, keyPackage, message, openStore, text, T0, type StoreFactory, logOf } from './fixtures.js'

const NOW = T0 / 1000
const range = (n: number) => Array.from({ length: n }, (_, i) => i)
const accepted = (results: AppendResult[]) => results.filter((r): r is Extract<AppendResult, { ok: true }> => r.ok)

export function concurrencyContract(factory: StoreFactory): void {
  describe('atomicity under concurrency', () => {
    test('50 parallel claims on a pool of 10: 10 distinct packages, then the last-resort one for the rest', async (t) => {
      const store = await openStore(t, factory)
      await store.addKeyPackages('bob', range(10).map(() => keyPackage()), NOW)
      const lastResort = keyPackage({ lastResort: true, label: 'last' })
      const claims = await Promise.all(range(50).map(() => store.claimKeyPackage('bob', { now: NOW })))
      const normal = claims.filter((c) => c !== undefined && !c.lastResort)
      assert.equal(normal.length, 10)
      assert.equal(new Set(normal.map((c) => c!.ref)).size, 10)
      assert.equal(claims.filter((c) => c === undefined).length, 40)
      await store.addKeyPackages('bob', [lastResort, ...range(5).map(() => keyPackage())], NOW)
      const more = await Promise.all(range(20).map(() => store.claimKeyPackage('bob', { now: NOW })))
      assert.equal(new Set(more.filter((c) => !c!.lastResort).map((c) => c!.ref)).size, 5)
      assert.equal(more.filter((c) => c!.ref === lastResort.ref).length, 15)
    })

    test('200 parallel appends get the seqs 1..200, each once', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['a', 'b'])
      const results = await Promise.all(range(200).map((i) => store.appendMessage('g', message(i % 2 ? 'a' : 'b', `m${i}`), MEMBER)))
      assert.deepEqual(accepted(results).map((r) => r.seq).sort((x, y) => x - y), range(200).map((i) => i + 1))
      const log = await logOf(store, 'g', 0, 1000)
      assert.deepEqual(log?.map((m) => m.seq), range(200).map((i) => i + 1))
      assert.equal(new Set(log?.map((m) => text(m.data))).size, 200)
    })

    test('20 parallel commits for one epoch: exactly one accepted, the others told the new epoch', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['a', 'b'], 7)
      const results = await Promise.all(range(20).map((i) => store.appendMessage(
        'g',
        message('a', `c${i}`, { messageType: 'Commit', epoch: 7, contentType: 'commit' }),
        { ...MEMBER, epoch: { expected: 7, advance: true } },
        { groupInfo: { epoch: 8, data: bytes(`info${i}`), ratchetTree: null, storedAt: T0 }, welcome: { data: bytes(`w${i}`), recipients: [`new${i}`] } },
      )))
      const winners = accepted(results)
      assert.equal(winners.length, 1)
      assert.deepEqual(results.filter((r) => !r.ok), range(19).map(() => ({ ok: false, reason: 'stale_epoch', currentEpoch: 8 })))
      const winner = results.indexOf(winners[0]!)
      const group = await store.getGroup('g')
      assert.equal(group?.epoch, 8)
      assert.deepEqual(group?.members, ['a', 'b', `new${winner}`], 'only the accepted commit\'s Welcome took effect')
      assert.equal(text((await store.getGroupInfo('g'))!.data), `info${winner}`)
      assert.equal((await logOf(store, 'g', 0, 100))?.length, 1)
    })

    test('concurrent senders in groups sharing members: every member\'s queue is gap-free and in each group\'s order', async (t) => {
      const store = await openStore(t, factory)
      const groups = ['g1', 'g2', 'g3']
      for (const g of groups) await groupWith(store, g, [`${g}-sender`, 'shared', 'other'])
      const perGroup = 40
      await Promise.all(groups.flatMap((g) => range(perGroup).map((i) => store.appendMessage(g, message(`${g}-sender`, `${g}:${i}`), MEMBER))))
      for (const reader of ['shared', 'other']) {
        const page = await store.readDeliveries(reader, 0, 1000, T0)
        assert.deepEqual(page.deliveries.map((d) => d.seq), range(groups.length * perGroup).map((i) => i + 1), reader)
        for (const g of groups) {
          const groupSeqs = page.deliveries.filter((d) => d.groupId === g).map((d) => d.groupSeq)
          assert.deepEqual(groupSeqs, range(perGroup).map((i) => i + 1), `${reader} gets ${g} in group order`)
        }
      }
    })

    test('parallel retries of one publish store it once and all get its seq', async (t) => {
      const store = await openStore(t, factory)
      await groupWith(store, 'g', ['a', 'b'])
      await store.appendMessage('g', message('a', 'first'), MEMBER)
      const results = await Promise.all(range(10).map(() => store.appendMessage('g', message('a', 'retry'), { ...MEMBER, retry: { sameBytes: false, key: 'same' } })))
      const ok = accepted(results)
      assert.equal(ok.length, 10)
      assert.equal(ok.filter((r) => !r.duplicate).length, 1)
      assert.deepEqual(new Set(ok.map((r) => r.seq)), new Set([2]))
      assert.equal((await store.readDeliveries('b', 0, 100, T0)).lastSeq, 2)
    })

    test('hostile ids are plain strings everywhere', async (t) => {
      const store = await openStore(t, factory)
      for (const id of HOSTILE_IDS) {
        await store.addKeyPackages(id, [keyPackage({ label: id })], NOW)
        await groupWith(store, id, [id, `${id}-peer`])
        const result = await store.appendMessage(id, message(`${id}-peer`, id), { ...ANY_MEMBER, retry: { sameBytes: true, key: id } })
        assert.ok(result.ok && result.seq === 1, id)
      }
      assert.deepEqual(await store.listKeyPackageClients(NOW), [...HOSTILE_IDS].sort(compareIds))
      for (const id of HOSTILE_IDS) {
        assert.equal(text((await store.claimKeyPackage(id, { now: NOW }))!.data), id)
        assert.deepEqual((await store.getGroup(id))?.members, [id, `${id}-peer`])
        assert.deepEqual((await store.readDeliveries(id, 0, 10, T0)).deliveries.map((d) => [d.groupId, text(d.data)]), [[id, id]])
      }
      assert.equal(await store.getGroup('toString'), undefined)
      assert.equal(await store.claimKeyPackage('valueOf', { now: NOW }), undefined)
    })
  })
}
