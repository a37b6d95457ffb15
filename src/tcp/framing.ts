/**
 * Turns the bytes of one TCP connection into complete top-level JSON values.
 *
 * The original service parsed each socket read as one whole document (LEGACY-TCP.md,
 * "Framing"). Here a small pushdown tokenizer follows the JSON grammar byte by byte, so it
 * knows where a value ends without a delimiter: a request split over any number of reads,
 * several requests back to back (`{..}{..}`, with or without whitespace or newlines in
 * between) and a request with no trailing newline all work. Each byte is looked at once.
 * A value that ends in the read it began in is parsed from that read, uncopied; the bytes of
 * one spread over reads are copied into one buffer that doubles as it fills. So copying is
 * linear in the value's size, and a value dripped a byte per read holds at most twice its
 * size, not a read buffer and its objects per byte (~250 times the bytes, when they were kept
 * as slices of the reads).
 *
 * The tokenizer only finds boundaries and structural errors (it spots `hello` at its first
 * byte). Numbers, literals and escapes are checked by JSON.parse on the complete value.
 *
 * Fast path: walking every byte in JavaScript cost more than the rest of a request. So at the
 * start of a line, with nothing in progress, the splitter finds the line's `\n` natively and
 * JSON.parses the line when it is one object (`fast-lines.ts`); the tokenizer takes over for
 * that line only when the fast path declines (see there), and for the last, unterminated
 * part of a read, which it must scan to answer an object that no newline follows. Either way
 * the frames are the same, so the rules below hold for both.
 *
 * Resynchronisation after malformed input: the rest of the line is discarded, then parsing
 * starts afresh (a top-level word that is not JSON, like `nonsense`, counts as malformed). Two exceptions keep a good request on the next line: when the offending
 * byte is itself a newline nothing more is discarded, and when it is a `{` that opens a line
 * (an earlier request was left unclosed) a new request starts at that `{`.
 *
 * A value larger than `maxMessageBytes` is fatal: the splitter reports it once and then
 * ignores all further input, because the connection has lost its place in the stream.
 */

import { parseObjectLine, type LineLimits } from './fast-lines.js'

export type Frame =
  | { readonly kind: 'value'; readonly value: unknown }
  /** Not JSON, or not one value; `detail` says why in the words of a JSON parser. */
  | { readonly kind: 'invalid'; readonly detail: string }
  /** A value longer than the limit; the connection should be answered and closed. */
  | { readonly kind: 'too_large'; readonly limit: number }

export interface SplitterOptions {
  readonly maxMessageBytes: number
  /** Deeper nesting is an error; no request needs more than a few levels. */
  readonly maxDepth?: number
}

export const DEFAULT_MAX_DEPTH = 64

// Tokenizer states.
const BETWEEN = 0 // no value in progress; whitespace is skipped
const SKIP_LINE = 1 // discarding the rest of a malformed line
const VALUE = 2 // a value must come next
const ARRAY_FIRST = 3 // just after `[`: a value or `]`
const OBJECT_FIRST = 4 // just after `{`: a key or `}`
const KEY = 5 // just after `,` in an object: a key
const COLON = 6
const AFTER_VALUE = 7 // inside a container after a value: `,` or the closing bracket
const STRING = 8
const STRING_ESCAPE = 9
const SCALAR = 10 // a number or literal: runs until a byte that cannot belong to it
const DONE = 11 // after a fatal error

const OBJECT = 1
const ARRAY = 2

const LF = 0x0a
const QUOTE = 0x22
const BACKSLASH = 0x5c

const isWhitespace = (b: number) => b === 0x20 || b === LF || b === 0x0d || b === 0x09
/** Bytes that can continue a number or a literal (digits, letters, `.`, `+`, `-`). */
const isScalarByte = (b: number) => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || b === 0x2e || b === 0x2b || b === 0x2d
const isScalarStart = (b: number) => (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x74 || b === 0x66 || b === 0x6e // digit, -, t, f, n

export class JsonSplitter {
  readonly #maxBytes: number
  readonly #maxDepth: number
  readonly #decoder = new TextDecoder('utf-8', { fatal: true })
  #state = BETWEEN
  /** Open containers, innermost last. */
  readonly #stack: number[] = []
  #stringIsKey = false
  /** The bytes of the value in progress from earlier reads: #pending[0, #pendingLength). */
  #pending: Buffer | undefined
  #pendingLength = 0
  /** Only whitespace since the last newline: a `{` here may start over after an error. */
  #atLineStart = true

  readonly #lineLimits: LineLimits

  constructor(options: SplitterOptions) {
    this.#maxBytes = options.maxMessageBytes
    this.#maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH
    this.#lineLimits = { maxBytes: this.#maxBytes, maxDepth: this.#maxDepth, decoder: this.#decoder }
  }

  /** Feeds one read; returns the frames completed by it, in order. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = []
    let i = 0
    while (i < chunk.length && this.#state !== DONE) {
      if (this.#state === BETWEEN && this.#atLineStart) i = this.#fastLines(chunk, i, frames)
      if (i < chunk.length) i = this.#scan(chunk, i, frames)
    }
    return frames
  }

  /** Whole lines from chunk[i] that are one object each; returns where the tokenizer must go on. */
  #fastLines(chunk: Buffer, i: number, frames: Frame[]): number {
    for (;;) {
      const lf = chunk.indexOf(LF, i)
      if (lf === -1) return i
      const line = parseObjectLine(chunk, i, lf, this.#lineLimits)
      if (!line.blank) {
        if (line.value === undefined) return i
        frames.push({ kind: 'value', value: line.value })
      }
      i = lf + 1
    }
  }

  /**
   * The tokenizer, from chunk[i]: to the end of the chunk, or until a newline leaves it
   * between values at the start of a line (the fast path's turn again); returns where it stopped.
   */
  #scan(chunk: Buffer, i: number, frames: Frame[]): number {
    let start = i // where the value in progress begins in this chunk
    const n = chunk.length
    while (i < n) {
      const b = chunk[i] as number
      switch (this.#state) {
        case BETWEEN:
          if (isWhitespace(b)) break
          start = i
          if (b === QUOTE) this.#openString(false)
          else if (isScalarStart(b)) this.#state = SCALAR
          else if (!this.#open(b)) {
            if (this.#fail(frames, chunk, i, i, 'expected value')) continue
          }
          break
        case SKIP_LINE:
          if (b === LF) this.#state = BETWEEN
          break
        case VALUE:
        case ARRAY_FIRST:
          if (isWhitespace(b)) break
          if (b === QUOTE) this.#openString(false)
          else if (isScalarStart(b)) this.#state = SCALAR
          else if (this.#state === ARRAY_FIRST && b === 0x5d) {
            if (this.#close(chunk, start, i, frames)) start = i + 1
          } else if (!this.#open(b)) {
            const tooDeep = b === 0x7b || b === 0x5b
            if (this.#fail(frames, chunk, start, i, tooDeep ? 'recursion limit exceeded' : 'expected value')) continue
          }
          break
        case OBJECT_FIRST:
        case KEY:
          if (isWhitespace(b)) break
          if (b === QUOTE) this.#openString(true)
          else if (this.#state === OBJECT_FIRST && b === 0x7d) {
            if (this.#close(chunk, start, i, frames)) start = i + 1
          } else {
            if (this.#fail(frames, chunk, start, i, b === 0x7d ? 'trailing comma' : 'key must be a string')) continue
          }
          break
        case COLON:
          if (isWhitespace(b)) break
          if (b === 0x3a) this.#state = VALUE
          else {
            if (this.#fail(frames, chunk, start, i, 'expected `:`')) continue
          }
          break
        case AFTER_VALUE: {
          if (isWhitespace(b)) break
          const inObject = this.#stack.at(-1) === OBJECT
          if (b === 0x2c) this.#state = inObject ? KEY : VALUE
          else if (b === (inObject ? 0x7d : 0x5d)) {
            if (this.#close(chunk, start, i, frames)) start = i + 1
          } else {
            if (this.#fail(frames, chunk, start, i, inObject ? 'expected `,` or `}`' : 'expected `,` or `]`')) continue
          }
          break
        }
        case STRING:
          if (b === QUOTE) {
            if (this.#stringIsKey) this.#state = COLON
            else if (this.#valueEnded(chunk, start, i + 1, frames)) start = i + 1
          } else if (b === BACKSLASH) this.#state = STRING_ESCAPE
          else if (b < 0x20) {
            if (this.#fail(frames, chunk, start, i, 'control character (\\u0000-\\u001F) found while parsing a string')) continue
          }
          break
        case STRING_ESCAPE:
          this.#state = STRING
          break
        case SCALAR:
          if (isScalarByte(b)) break
          // The byte after a number or literal is not part of it: look at it again, unless
          // a top-level word failed to parse (`nonsense here`): then the line is garbage.
          if (this.#valueEnded(chunk, start, i, frames)) {
            start = i
            if (frames.at(-1)?.kind === 'invalid' && b !== LF) {
              this.#state = SKIP_LINE
              break
            }
          }
          continue
        case DONE:
          return n
      }
      i++
      if (b === LF) {
        this.#atLineStart = true
        if (this.#state === BETWEEN) return i
      } else if (!isWhitespace(b)) this.#atLineStart = false
    }
    if (this.#inValue()) {
      if (this.#pendingLength + n - start > this.#maxBytes) frames.push(this.#tooLarge())
      else this.#keep(chunk.subarray(start))
    }
    return n
  }

  /** The peer closed its side: a number or literal ends here, anything else unfinished is an error. */
  end(): Frame[] {
    const frames: Frame[] = []
    if (this.#state === SCALAR && this.#stack.length === 0) {
      this.#valueEnded(Buffer.alloc(0), 0, 0, frames)
    } else if (this.#inValue()) {
      const what = this.#state === STRING || this.#state === STRING_ESCAPE ? 'a string' : this.#stack.at(-1) === ARRAY ? 'a list' : 'an object'
      this.#fail(frames, Buffer.alloc(0), 0, 0, `EOF while parsing ${what}`)
    }
    this.#reset()
    this.#state = DONE
    return frames
  }

  #inValue(): boolean {
    return this.#state !== BETWEEN && this.#state !== SKIP_LINE && this.#state !== DONE
  }

  #openString(isKey: boolean): void {
    this.#stringIsKey = isKey
    this.#state = STRING
  }

  /** Opens a container for `{` or `[`; false for any other byte or when nested too deep. */
  #open(b: number): boolean {
    if (b !== 0x7b && b !== 0x5b) return false
    if (this.#stack.length >= this.#maxDepth) return false
    this.#stack.push(b === 0x7b ? OBJECT : ARRAY)
    this.#state = b === 0x7b ? OBJECT_FIRST : ARRAY_FIRST
    return true
  }

  /** Closes the innermost container at byte i; true when that ended a top-level value. */
  #close(chunk: Buffer, start: number, i: number, frames: Frame[]): boolean {
    this.#stack.pop()
    return this.#valueEnded(chunk, start, i + 1, frames)
  }

  /** A value ended just before `end`; emits it when it was a top-level one. */
  #valueEnded(chunk: Buffer, start: number, end: number, frames: Frame[]): boolean {
    if (this.#stack.length > 0) {
      this.#state = AFTER_VALUE
      return false
    }
    const length = this.#pendingLength + end - start
    if (length > this.#maxBytes) {
      frames.push(this.#tooLarge())
      return false
    }
    const last = chunk.subarray(start, end)
    if (this.#pendingLength > 0) this.#keep(last)
    const bytes = this.#pendingLength > 0 ? this.#pending!.subarray(0, length) : last
    this.#reset()
    frames.push(this.#parse(bytes))
    return true
  }

  #parse(bytes: Uint8Array): Frame {
    let text: string
    try {
      text = this.#decoder.decode(bytes)
    } catch {
      return { kind: 'invalid', detail: 'invalid UTF-8' }
    }
    try {
      return { kind: 'value', value: JSON.parse(text) }
    } catch (err) {
      return { kind: 'invalid', detail: (err as Error).message }
    }
  }

  /**
   * Reports a structural error at chunk[i] and resynchronises (see the top of this file).
   * True when the caller must look at chunk[i] again.
   */
  #fail(frames: Frame[], chunk: Buffer, start: number, i: number, reason: string): boolean {
    const position = this.#position(chunk, start, i)
    const b = chunk[i]
    const restartHere = b === 0x7b && this.#atLineStart && this.#state !== BETWEEN
    this.#reset()
    this.#state = b === LF || restartHere ? BETWEEN : SKIP_LINE
    frames.push({ kind: 'invalid', detail: `${reason} at ${position}` })
    return this.#state === BETWEEN
  }

  /** "line L column C" of chunk[i] within the value in progress; only computed on errors. */
  #position(chunk: Buffer, start: number, i: number): string {
    let line = 1
    let column = 1
    const count = (bytes: Uint8Array) => {
      for (const b of bytes) {
        if (b === LF) {
          line++
          column = 1
        } else if ((b & 0xc0) !== 0x80) column++ // count characters, not UTF-8 continuation bytes
      }
    }
    if (this.#pending) count(this.#pending.subarray(0, this.#pendingLength))
    count(chunk.subarray(start, i))
    return `line ${line} column ${column}`
  }

  #tooLarge(): Frame {
    this.#reset()
    this.#state = DONE
    return { kind: 'too_large', limit: this.#maxBytes }
  }

  /** Appends to the value in progress; the buffer doubles (up to the limit), so copying stays linear. */
  #keep(bytes: Uint8Array): void {
    const length = this.#pendingLength + bytes.length
    if (!this.#pending || length > this.#pending.length) {
      // Memory of its own (not Buffer's shared pool), released with the value.
      const grown = Buffer.allocUnsafeSlow(Math.min(Math.max(length, 2 * (this.#pending?.length ?? 0), 256), this.#maxBytes))
      this.#pending?.copy(grown, 0, 0, this.#pendingLength)
      this.#pending = grown
    }
    this.#pending.set(bytes, this.#pendingLength)
    this.#pendingLength = length
  }

  #reset(): void {
    this.#state = BETWEEN
    this.#stack.length = 0
    this.#pending = undefined
    this.#pendingLength = 0
  }
}
