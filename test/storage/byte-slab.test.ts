import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ByteSlab } from '../../src/storage/byte-slab.js'

test('ByteSlab copies values into shared chunks, each a view of exactly its bytes', () => {
  const slab = new ByteSlab(16, 1024)
  const inputs = [1, 5, 16, 17, 40, 100, 3].map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 31 + j) & 0xff))
  const copies = inputs.map((bytes) => slab.copy(bytes))
  copies.forEach((copy, i) => {
    assert.deepEqual(copy, inputs[i])
    assert.notEqual(copy.buffer, inputs[i]!.buffer)
  })
  // Copies are independent of their inputs and of each other.
  const expected = inputs.map((bytes) => Uint8Array.from(bytes))
  inputs.forEach((bytes) => bytes.fill(0xee))
  copies.forEach((copy, i) => assert.deepEqual(copy, expected[i]))
  assert.equal(copies[0]!.buffer, copies[1]!.buffer, 'small values share a chunk')
})

test('ByteSlab gives large values memory of their own, and a value larger than the next chunk its own chunk size', () => {
  const slab = new ByteSlab(16, 1024)
  const large = new Uint8Array(1000).fill(7)
  const copy = slab.copy(large)
  assert.deepEqual(copy, large)
  assert.equal(copy.byteLength, copy.buffer.byteLength)
  const medium = new Uint8Array(100).fill(9)
  assert.deepEqual(slab.copy(medium), medium)
  const empty = slab.copy(new Uint8Array(0))
  assert.equal(empty.length, 0)
})

test('ByteSlab places values and views them again by location, also in later chunks and own chunks', () => {
  const slab = new ByteSlab(16, 1024)
  const inputs = [10, 10, 200, 30, 0, 500].map((n, i) => Uint8Array.from({ length: n }, (_, j) => (i * 13 + j) & 0xff))
  const locations = inputs.map((bytes) => slab.place(bytes))
  inputs.forEach((bytes, i) => {
    const view = slab.view(locations[i]!, bytes.length)
    assert.deepEqual(view, bytes)
    assert.notEqual(view, slab.view(locations[i]!, bytes.length), 'a fresh view each time')
  })
  assert.equal(slab.view(locations[5]!, 500).buffer.byteLength, 500, 'a large value has a chunk of its own')
})
