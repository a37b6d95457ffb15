import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compareIds, pageOfIds } from '../../src/storage/id-order.js'

/** Ids of well-formed Unicode drawn from the ranges where UTF-16 and code point order disagree. */
function randomIds(count: number, seed: number): string[] {
  let state = seed
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31
    return state
  }
  const alphabet = ['a', 'b', 'z', 'é', '\u07FF', '\u0800', '\uD7FF', '\uE000', '\uFFFD', '\uFFFF', '😀', '\u{10000}', '\u{10FFFF}']
  return Array.from({ length: count }, () => Array.from({ length: 1 + (next() % 4) }, () => alphabet[next() % alphabet.length]).join(''))
}

const byUtf8 = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))

test('compareIds orders as the UTF-8 bytes do (PostgreSQL "C", SQLite BINARY), not as UTF-16 units', () => {
  const ids = randomIds(2000, 7)
  for (let i = 0; i + 1 < ids.length; i++) {
    assert.equal(Math.sign(compareIds(ids[i]!, ids[i + 1]!)), Math.sign(byUtf8(ids[i]!, ids[i + 1]!)), `${JSON.stringify(ids[i])} vs ${JSON.stringify(ids[i + 1])}`)
  }
  assert.ok(compareIds('\uFFFD', '😀') < 0 && '\uFFFD' > '😀', 'the case where the two orders differ')
  assert.ok(compareIds('ab', 'a') > 0 && compareIds('a', 'a') === 0)
})

test('pageOfIds: the first `limit` ids after the cursor, sorted, whatever order they come in', () => {
  for (const seed of [1, 2, 3]) {
    const ids = [...new Set(randomIds(500, seed))]
    const sorted = [...ids].sort(byUtf8)
    for (const input of [ids, sorted, [...sorted].reverse()]) {
      for (const [after, limit] of [[undefined, undefined], [undefined, 1], [sorted[10], 25], [sorted[sorted.length - 2], 5], [sorted.at(-1), 3], ['', 1000]] as const) {
        const expected = sorted.filter((id) => after === undefined || byUtf8(id, after) > 0).slice(0, limit ?? Infinity)
        assert.deepEqual(pageOfIds(input, { after, limit }), expected, `after ${JSON.stringify(after)}, limit ${limit}`)
      }
    }
  }
})

test('pageOfIds asks `accept` only about ids that would make the page, and leaves out the refused', () => {
  const ids = Array.from({ length: 1000 }, (_, i) => `id-${String(i).padStart(4, '0')}`)
  const asked: string[] = []
  const page = pageOfIds(ids, { after: 'id-0100', limit: 10 }, (id) => {
    asked.push(id)
    return !id.endsWith('5')
  })
  assert.deepEqual(page, ['id-0101', 'id-0102', 'id-0103', 'id-0104', 'id-0106', 'id-0107', 'id-0108', 'id-0109', 'id-0110', 'id-0111'])
  // In ascending input the page fills with the first ids and every later one is passed over at once.
  assert.equal(asked.length, 11)
})
