import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { isStandardBase64 } from '../../src/http/validation.js'
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
