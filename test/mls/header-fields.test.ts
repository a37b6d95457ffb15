import assert from 'node:assert/strict'
import { test } from 'node:test'
import { readU64, view } from '../../src/mls/bytes.js'
import { isServiceError } from '../../src/errors.js'
import { assertSameGroup, toEpoch } from '../../src/service/message-intake.js'

const u64 = (value: bigint) => {
  const b = new Uint8Array(10)
  new DataView(b.buffer).setBigUint64(1, value)
  return b
}

test('readU64 reads every range exactly, below and above 2^53', () => {
  for (const value of [0n, 1n, 255n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n + 12345n, 2n ** 64n - 1n]) {
    assert.equal(readU64(u64(value), 1), value)
  }
})

test('toEpoch takes epochs up to 2^53 - 1 and refuses larger ones', () => {
  assert.equal(toEpoch(2n ** 53n - 1n), Number.MAX_SAFE_INTEGER)
  assert.throws(() => toEpoch(2n ** 53n), (err: unknown) => isServiceError(err) && err.code === 'invalid_message')
})

test('view is a view, not a copy', () => {
  const bytes = new Uint8Array([1, 2, 3, 4, 5]).subarray(1)
  const part = view(bytes, 1, 2)
  assert.deepEqual([...part], [3, 4])
  bytes[1] = 9
  assert.equal(part[0], 9)
})

test('assertSameGroup compares the UTF-8 bytes of the group id, ASCII or not', () => {
  const utf8 = (s: string) => new TextEncoder().encode(s)
  const refused = (groupId: string, bytes: Uint8Array) =>
    assert.throws(() => assertSameGroup(groupId, bytes), (err: unknown) => isServiceError(err) && err.code === 'invalid_message' && err.details?.check === 'group_id')
  for (const id of ['room-1', 'é', 'grüße', '群组', 'a\u{1F600}b']) assertSameGroup(id, utf8(id))
  refused('room-1', utf8('room-2'))
  refused('room-1', utf8('room-10'))
  refused('room-10', utf8('room-1'))
  refused('room', new Uint8Array())
  refused('grüße', utf8('grusse'))
  refused('é', new Uint8Array([0xe9]))
})
