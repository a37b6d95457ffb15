import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import { JsonSplitter, type Frame } from '../../src/tcp/framing.js'

const MiB = 1024 * 1024

function split(input: string | Buffer | Array<string | Buffer>, maxMessageBytes = MiB): Frame[] {
  const splitter = new JsonSplitter({ maxMessageBytes })
  const chunks = Array.isArray(input) ? input : [input]
  const frames = chunks.flatMap((chunk) => splitter.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)))
  return [...frames, ...splitter.end()]
}

/** A full GC, without starting node with --expose-gc. */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc')
  ;(vm.runInNewContext('gc') as () => void)()
}

/** Pushes each byte as a read of its own; returns a weak reference to each read's memory. */
function drip(splitter: JsonSplitter, bytes: Buffer): WeakRef<ArrayBuffer>[] {
  const reads: WeakRef<ArrayBuffer>[] = []
  for (const byte of bytes) {
    const read = Buffer.alloc(1, byte) // memory of its own, as a socket read has
    reads.push(new WeakRef(read.buffer))
    assert.deepEqual(splitter.push(read), [])
  }
  return reads
}

const values = (frames: Frame[]) => frames.map((f) => (f.kind === 'value' ? f.value : f.kind === 'invalid' ? `invalid: ${f.detail}` : 'too_large'))

describe('JsonSplitter', () => {
  it('yields an object as soon as its closing brace arrives, without a newline', () => {
    const splitter = new JsonSplitter({ maxMessageBytes: MiB })
    assert.deepEqual(splitter.push(Buffer.from('{"type":"List')), [])
    assert.deepEqual(splitter.push(Buffer.from('KeyPackages"}')), [{ kind: 'value', value: { type: 'ListKeyPackages' } }])
  })

  it('splits back-to-back objects with newlines, whitespace or nothing between them', () => {
    const expected = [{ a: 1 }, { b: [2, { c: '}' }] }, { d: null }]
    assert.deepEqual(values(split('{"a":1}\n{"b":[2,{"c":"}"}]}\n{"d":null}\n')), expected)
    assert.deepEqual(values(split('{"a":1} \t\r\n {"b":[2,{"c":"}"}]}  {"d":null}')), expected)
    assert.deepEqual(values(split('{"a":1}{"b":[2,{"c":"}"}]}{"d":null}')), expected)
  })

  it('reassembles a request split into one-byte chunks', () => {
    const text = '{"type":"RelayMessage","message":[1,2,3],"s":"a\\"}{"}\n{"x":true}'
    const chunks = [...Buffer.from(text)].map((b) => Buffer.from([b]))
    assert.deepEqual(values(split(chunks)), [{ type: 'RelayMessage', message: [1, 2, 3], s: 'a"}{' }, { x: true }])
  })

  it('does not count braces, brackets or escaped quotes inside strings', () => {
    assert.deepEqual(values(split('{"k":"{[\\"\\\\"}{"n":"]}"}')), [{ k: '{["\\' }, { n: ']}' }])
  })

  it('decodes a multi-byte UTF-8 character split across chunks', () => {
    const bytes = Buffer.from('{"id":"héllo 🐱"}')
    const cut = bytes.indexOf(0xf0) + 2 // in the middle of the 4-byte emoji
    assert.deepEqual(values(split([bytes.subarray(0, 9), bytes.subarray(9, cut), bytes.subarray(cut)])), [{ id: 'héllo 🐱' }])
  })

  it('reports invalid UTF-8', () => {
    assert.deepEqual(values(split(Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))), ['invalid: invalid UTF-8'])
  })

  it('answers garbage with one error and resynchronises at the next newline', () => {
    assert.deepEqual(values(split('hello world {"x":1}\n{"ok":1}\n')), ['invalid: expected value at line 1 column 1', { ok: 1 }])
    assert.deepEqual(values(split('nonsense here\n{"ok":1}')).slice(1), [{ ok: 1 }])
    assert.equal(split('nonsense here\n{"ok":1}').length, 2)
  })

  it('reports structural errors early, with a position, and keeps going', () => {
    assert.deepEqual(values(split('{"a":1,}\n{"ok":1}')), ['invalid: trailing comma at line 1 column 8', { ok: 1 }])
    assert.deepEqual(values(split('{"a" 1}\n{"ok":1}')), ['invalid: expected `:` at line 1 column 6', { ok: 1 }])
    assert.deepEqual(values(split('{a:1}\n{"ok":1}')), ['invalid: key must be a string at line 1 column 2', { ok: 1 }])
    assert.deepEqual(values(split('[1 2]\n{"ok":1}')), ['invalid: expected `,` or `]` at line 1 column 4', { ok: 1 }])
    assert.deepEqual(values(split('{"a":\n  x}\n{"ok":1}')), ['invalid: expected value at line 2 column 3', { ok: 1 }])
  })

  it('keeps a request on the next line when the previous one was left unclosed', () => {
    const frames = values(split('{"type":"ListKeyPackages"\n{"type":"ListKeyPackages"}\n'))
    assert.equal(frames.length, 2)
    assert.match(String(frames[0]), /^invalid: expected `,` or `}` at line 2 column 1/)
    assert.deepEqual(frames[1], { type: 'ListKeyPackages' })
  })

  it('treats a raw newline inside a string as an error ending the line', () => {
    const frames = values(split('{"type":"abc\n{"ok":1}\n'))
    assert.match(String(frames[0]), /control character/)
    assert.deepEqual(frames[1], { ok: 1 })
  })

  it('lets JSON.parse judge numbers, literals and escapes', () => {
    const frames = values(split('{"a":tru}{"b":01}{"c":"\\q"}{"ok":1}'))
    assert.equal(frames.length, 4)
    for (const frame of frames.slice(0, 3)) assert.match(String(frame), /^invalid: /)
    assert.deepEqual(frames[3], { ok: 1 })
  })

  it('yields top-level non-objects as values (the protocol rejects them)', () => {
    assert.deepEqual(values(split('42\n[1]\n"s"\ntrue null')), [42, [1], 's', true, null])
    // A number followed directly by an object: both are values.
    assert.deepEqual(values(split('7{"a":1}')), [7, { a: 1 }])
  })

  it('reports an unfinished value at EOF', () => {
    assert.deepEqual(values(split('{"a":[1,')), ['invalid: EOF while parsing a list at line 1 column 9'])
    assert.deepEqual(values(split('{"a":"x')), ['invalid: EOF while parsing a string at line 1 column 8'])
    assert.deepEqual(values(split('{"type":"ListKeyPackages"}')), [{ type: 'ListKeyPackages' }])
    assert.deepEqual(values(split('  \n ')), [])
  })

  it('limits nesting depth', () => {
    const frames = values(split(`${'['.repeat(100)}${']'.repeat(100)}\n{"ok":1}`))
    assert.match(String(frames[0]), /recursion limit exceeded/)
    assert.deepEqual(frames.at(-1), { ok: 1 })
  })

  it('accepts a value of exactly the limit and rejects one byte more, once, then ignores input', () => {
    const exact = `{"p":"${'x'.repeat(100 - 8)}"}`
    assert.equal(exact.length, 100)
    assert.deepEqual(values(split(exact, 100)), [{ p: 'x'.repeat(92) }])
    const over = `{"p":"${'x'.repeat(93)}"}`
    assert.deepEqual(values(split([over, '{"ok":1}'], 100)), ['too_large'])
    // Also when the value never ends: detected at the end of the read that crosses the limit.
    assert.deepEqual(values(split(['{"p":"', 'x'.repeat(200), '"}{"ok":1}'], 100)), ['too_large'])
    // Whitespace between requests does not count.
    assert.deepEqual(values(split(`${' '.repeat(500)}${exact}\n`.repeat(3), 100)).length, 3)
  })

  it('reassembles a 1 MiB request from 1 KiB chunks', () => {
    const bytes = Array.from({ length: 280_000 }, (_, i) => i % 256)
    const body = Buffer.from(JSON.stringify({ type: 'RelayMessage', message: bytes }))
    assert.ok(body.length > 900_000 && body.length <= MiB)
    const chunks: Buffer[] = []
    for (let i = 0; i < body.length; i += 1024) chunks.push(body.subarray(i, i + 1024))
    const frames = split(chunks)
    assert.equal(frames.length, 1)
    assert.deepEqual((frames[0] as { value: { message: number[] } }).value.message, bytes)
  })

  it('keeps a value dripped a byte per read in one buffer, not the reads themselves', async () => {
    // Each socket read is a Buffer of its own; keeping a slice of each kept ~250 bytes of
    // buffer and objects per byte of a partial request (a slow client's memory amplifier).
    const text = `{"type":"ListKeyPackages","pad":"${'x'.repeat(3000)}"}`
    const splitter = new JsonSplitter({ maxMessageBytes: MiB })
    const reads = drip(splitter, Buffer.from(text).subarray(0, -1))
    await new Promise((resolve) => setImmediate(resolve)) // WeakRefs hold their target until the job ends
    collectGarbage()
    const kept = reads.filter((r) => r.deref() !== undefined).length
    assert.equal(kept, 0, `${kept} of ${reads.length} reads are still held by the splitter`)
    assert.deepEqual(splitter.push(Buffer.from('}')), [{ kind: 'value', value: { type: 'ListKeyPackages', pad: 'x'.repeat(3000) } }])
  })

  describe('fast path (one object per line)', () => {
    it('splits a line that holds two objects, with or without a space between them', () => {
      assert.deepEqual(values(split('{"a":1}{"b":2}\n{"c":3}\n')), [{ a: 1 }, { b: 2 }, { c: 3 }])
      assert.deepEqual(values(split('{"a":1} {"b":{"x":[]}}\n{"c":3}\n')), [{ a: 1 }, { b: { x: [] } }, { c: 3 }])
    })

    it('keeps \\n escapes inside strings, and a raw newline in a string is still an error', () => {
      assert.deepEqual(values(split('{"s":"a\\nb\\r\\n"}\n{"t":"\\\\n"}\n')), [{ s: 'a\nb\r\n' }, { t: '\\n' }])
      const frames = values(split('{"s":"a\nb"}\n{"ok":1}\n'))
      assert.match(String(frames[0]), /control character/)
      assert.deepEqual(frames.at(-1), { ok: 1 })
    })

    it('joins a partial line with the rest that arrives in the next read, with whole lines after it', () => {
      const splitter = new JsonSplitter({ maxMessageBytes: MiB })
      assert.deepEqual(splitter.push(Buffer.from('{"a":1}\n{"type":"Relay')), [{ kind: 'value', value: { a: 1 } }])
      assert.deepEqual(values(splitter.push(Buffer.from('Message","m":[1,2]}\n{"b":2}\n{"c":'))), [{ type: 'RelayMessage', m: [1, 2] }, { b: 2 }])
      assert.deepEqual(values(splitter.push(Buffer.from('3}'))), [{ c: 3 }])
      assert.deepEqual(values(splitter.push(Buffer.from('\n{"d":4}\n'))), [{ d: 4 }])
    })

    it('accepts CRLF line ends, blank lines and surrounding whitespace', () => {
      assert.deepEqual(values(split('{"a":1}\r\n\r\n  {"b":2} \t\r\n\n{"c":3}\r\n')), [{ a: 1 }, { b: 2 }, { c: 3 }])
    })

    it('hands an object spread over several lines to the tokenizer', () => {
      assert.deepEqual(values(split('{\n  "type": "ListKeyPackages",\n  "a": {"b": 1}\n}\n{"ok":1}\n')), [{ type: 'ListKeyPackages', a: { b: 1 } }, { ok: 1 }])
    })

    it('still applies the depth limit, the size limit and UTF-8 checks to whole lines', () => {
      const deep = values(split(`{"a":${'['.repeat(70)}${']'.repeat(70)}}\n{"ok":1}\n`))
      assert.match(String(deep[0]), /recursion limit exceeded/)
      assert.deepEqual(deep.at(-1), { ok: 1 })
      assert.deepEqual(values(split(`{"a":${'['.repeat(63)}${']'.repeat(63)}}\n`)).length, 1)
      assert.deepEqual(values(split(`{"p":"${'x'.repeat(93)}"}\n{"ok":1}\n`, 100)), ['too_large'])
      const bad = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff]), Buffer.from('"}\n{"ok":1}\n')])
      assert.deepEqual(values(split(bad)), ['invalid: invalid UTF-8', { ok: 1 }])
    })

    it('answers malformed lines as the tokenizer does and goes on with the next line', () => {
      assert.deepEqual(values(split('{"a":1,}\n{"ok":1}\n')), ['invalid: trailing comma at line 1 column 8', { ok: 1 }])
      assert.deepEqual(values(split('{"a":tru}\n{"ok":1}\n')).length, 2)
      assert.deepEqual(values(split('{"a":1}}\n{"ok":1}\n')), [{ a: 1 }, 'invalid: expected value at line 1 column 1', { ok: 1 }])
    })

    it('gives the same frames whatever the reads, as the byte-at-a-time tokenizer does', () => {
      const corpus = [
        '{"type":"ListKeyPackages"}\n',
        '{"a":1}{"b":[1,{"c":"}\\n{"}]}\n',
        '  {"x":"\\u00e9\\n"}\r\n\n',
        '{"p":{\n"q":2}}\n',
        'nonsense\n',
        '{"a":1,}\n',
        '{"s":"ünï 🐱"} {"t":true}',
        '\n42\n[1,2]\n',
        '{"unclosed":1\n{"ok":1}\n',
        '{"a":{"b":{"c":[null,false,-1.5e3]}}}\n',
      ].join('')
      const bytes = Buffer.from(corpus)
      const bytewise = values(split([...bytes].map((b) => Buffer.from([b]))))
      assert.deepEqual(values(split(bytes)), bytewise)
      let seed = 7
      const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
      for (let round = 0; round < 50; round++) {
        const chunks: Buffer[] = []
        for (let i = 0; i < bytes.length;) {
          const size = 1 + Math.floor(random() * 40)
          chunks.push(bytes.subarray(i, i + size))
          i += size
        }
        assert.deepEqual(values(split(chunks)), bytewise, `round ${round}`)
      }
    })
  })
})
