import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HandedOutRefs } from '../../src/storage/handed-out-refs.js'
import { WelcomeInbox } from '../../src/storage/welcome-inbox.js'

test('HandedOutRefs: expired refs are swept as claims go on, so the map follows the live refs', () => {
  const refs = new HandedOutRefs()
  // 100,000 claims, each ref routing for 100 s, one claim a second: 101 live at any time.
  let largest = 0
  for (let now = 0; now < 100_000; now++) {
    refs.remember(`ref-${now}`, `client-${now % 7}`, now + 100, now)
    largest = Math.max(largest, refs.size)
  }
  assert.ok(largest <= 2 * HandedOutRefs.MIN_SWEEP, `at most ${largest} remembered`)
  const now = 99_999
  assert.deepEqual([...refs.owners([`ref-${now - 100}`, `ref-${now - 101}`, `ref-${now}`], now)], [[`ref-${now - 100}`, `client-${(now - 100) % 7}`], [`ref-${now}`, `client-${now % 7}`]])
})

test('HandedOutRefs: long-lived refs are kept through sweeps; the threshold follows them', () => {
  const refs = new HandedOutRefs()
  const live = 3 * HandedOutRefs.MIN_SWEEP
  for (let i = 0; i < live; i++) refs.remember(`long-${i}`, 'bob', 1_000_000, 0)
  for (let i = 0; i < 10 * live; i++) refs.remember(`short-${i}`, 'carol', i, i)
  assert.ok(refs.size <= 2 * live + 1, `${refs.size} remembered`)
  assert.equal(refs.owners(Array.from({ length: live }, (_, i) => `long-${i}`), 10 * live).size, live)
})

test('WelcomeInbox: retention drops from the front and never renumbers', () => {
  const inbox = new WelcomeInbox()
  const retention = { maxMessages: 10, maxAgeMs: 1000 }
  const data = new Uint8Array(1)
  for (let i = 1; i <= 1000; i++) inbox.push(`g${i}`, 'alice', data, i, retention)
  assert.equal(inbox.size, 10)
  assert.equal(inbox.lastSeq, 1000)
  assert.deepEqual(inbox.read(0, 3, retention, 1000).map((w) => [w.seq, w.groupId]), [[991, 'g991'], [992, 'g992'], [993, 'g993']])
  assert.deepEqual(inbox.read(998, 10, retention, 1995).map((w) => w.seq), [999, 1000], 'aged out from the front')
  assert.deepEqual(inbox.read(0, 10, retention, 3000), [])
  assert.equal(inbox.push('g', 'alice', data, 3000, retention).seq, 1001)
})

test('HandedOutRefs: forgetting a client drops its refs only, also after a ref changed hands and after sweeps', () => {
  const refs = new HandedOutRefs()
  refs.remember('shared', 'bob', 1_000_000, 0)
  refs.remember('bobs', 'bob', 1_000_000, 0)
  refs.remember('carols', 'carol', 1_000_000, 0)
  // The same KeyPackage uploaded by two clients: the later claim's owner is the one that counts.
  refs.remember('shared', 'carol', 1_000_000, 0)
  refs.forget('bob')
  assert.deepEqual([...refs.owners(['shared', 'bobs', 'carols'], 0)], [['shared', 'carol'], ['carols', 'carol']])
  refs.forget('nobody')
  assert.equal(refs.size, 2)
  // Sweeps (the map doubling past MIN_SWEEP) drop expired refs from the per-client index too.
  for (let i = 0; i < 3 * HandedOutRefs.MIN_SWEEP; i++) refs.remember(`short-${i}`, 'dave', i, i)
  refs.remember('daves', 'dave', 1_000_000, 3 * HandedOutRefs.MIN_SWEEP)
  // A ref a sweep dropped, handed out again for another client: forgetting dave must not touch it.
  refs.remember('short-5', 'erin', 1_000_000, 3 * HandedOutRefs.MIN_SWEEP)
  refs.forget('dave')
  assert.equal(refs.owners(['daves'], 0).size, 0)
  assert.deepEqual([...refs.owners(['short-5'], 0)], [['short-5', 'erin']], 'a sweep left no stale entry in dave\'s refs')
  refs.forget('erin')
  assert.deepEqual([...refs.owners(['shared', 'carols'], 0)].map(([, owner]) => owner), ['carol', 'carol'])
  refs.forget('carol')
  assert.equal(refs.size, 0)
})
