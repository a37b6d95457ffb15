import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { fromBase64, isStandardBase64 } from '../../src/schemas/base64.js'
import { BASE64_PATTERN } from '../../src/schemas/common.js'

// The pattern is the contract (it is in OpenAPI); isStandardBase64 must accept exactly its strings.
const pattern = new RegExp(BASE64_PATTERN)
const agree = (text: string) => assert.equal(isStandardBase64(text), pattern.test(text), `for ${JSON.stringify(text)}`)

describe('isStandardBase64 accepts exactly what BASE64_PATTERN accepts', () => {
  test('real base64 of every length from 0 to 64 bytes, and the empty string', () => {
    for (let n = 0; n <= 64; n++) {
      const text = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff)).toString('base64')
      agree(text)
      assert.equal(isStandardBase64(text), n > 0)
    }
  })

  test('every UTF-16 code unit in each position of a group of four', () => {
    for (let c = 0; c < 0x10000; c++) {
      const ch = String.fromCharCode(c)
      for (const text of [`${ch}AAA`, `A${ch}AA`, `AA${ch}=`, `AAA${ch}`, `AAAA${ch}AA=`]) agree(text)
    }
  })

  test('random strings over base64, its URL-safe cousins, padding, whitespace and non-ASCII', () => {
    const likely = 'QUJDRUZHSGlqa2xtbm9w0123456789+/'
    const odd = ['=', '-', '_', ' ', '\n', '\t', 'é', '\u0141', '\uff41', '\u0000', '.', '\ud83d']
    let seed = 7
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000)
    for (let i = 0; i < 100_000; i++) {
      const length = Math.floor(random() * 14)
      let text = ''
      for (let j = 0; j < length; j++) {
        text += random() < 0.8 ? likely[Math.floor(random() * likely.length)] : odd[Math.floor(random() * odd.length)]
      }
      agree(text)
    }
  })
})

describe('fromBase64 decodes each field once', () => {
  const message = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 31) & 0xff))
  const text = message.toString('base64')

  test('it takes the bytes the validator just decoded, once; each caller owns its bytes, in memory of their own', () => {
    assert.ok(isStandardBase64(text))
    const first = fromBase64(text)
    const second = fromBase64(text)
    assert.deepEqual(Buffer.from(first), message)
    assert.deepEqual(Buffer.from(second), message)
    assert.notEqual(first.buffer, second.buffer, 'the second call decodes again')
    for (const bytes of [first, second]) assert.equal(bytes.buffer.byteLength, message.length, 'not a slice of a shared pool')
    first[0] = 0xff
    assert.equal(second[0], message[0])
  })

  test('a string other than the last one validated is decoded on its own', () => {
    const other = Buffer.from('another message').toString('base64')
    assert.ok(isStandardBase64(text))
    assert.equal(Buffer.from(fromBase64(other)).toString(), 'another message')
    assert.deepEqual(Buffer.from(fromBase64(text)), message)
    assert.ok(!isStandardBase64('not base64!'))
    assert.deepEqual(Buffer.from(fromBase64(text)), message, 'a refused string leaves nothing behind')
  })
})
