import { ByteSlab, chunkOf } from './byte-slab.js'
import { worthCompacting } from './prefix-compaction.js'
import { CONTENT_TYPES, MESSAGE_TYPES, type ContentType, type MessageType, type NewMessage, type StoredMessage } from './store.js'

// Message i is the record #records[(i - #base) * FIELDS + field], for these fields.
const RECEIVED_AT = 0
/** NaN for null (Welcomes and opaque bytes). */
const EPOCH = 1
/** The group's epoch once the message was accepted (what a retry is answered with). */
const EPOCH_AFTER = 2
/** Where ByteSlab.place() put the bytes, and how many. */
const LOCATION = 3
const SIZE = 4
/** Index in MESSAGE_TYPES. */
const MESSAGE_TYPE = 5
/** Index in CONTENT_TYPES, or NO_CONTENT_TYPE. */
const CONTENT_TYPE = 6
const FIELDS = 7
/** In #chunkLast for a chunk released. */
const RELEASED = -1
/** The contentType code of a message without one (opaque bytes). */
const NO_CONTENT_TYPE = 255
const messageTypeCodes = new Map<MessageType, number>(MESSAGE_TYPES.map((type, code) => [type, code]))
const contentTypeCodes = new Map<ContentType, number>(CONTENT_TYPES.map((type, code) => [type, code]))

/**
 * A group's history: message i (from 0) has seq i + 1. Appended at the end, and only ever
 * trimmed from the front (GROUP_LOG_MAX_AGE: dropReceivedBefore), so the messages kept are
 * those from `firstSeq` on, and indexes and seqs never move. Kept as
 * fixed-size records of numbers in one plain array, one array of shared senderId strings, and
 * the bytes in a ByteSlab: a stored message costs about 60 bytes besides its data, where a
 * StoredMessage object and its Uint8Array view cost about 250. Objects and views are made only
 * for what is read.
 *
 * The records are a plain array, not typed arrays: V8 keeps an array of numbers unboxed (8
 * bytes each) in pages of its own. A growing typed array is a malloc'd buffer instead, and
 * glibc raises its mmap threshold to the size of each mmap'd block freed, so once one larger
 * than ByteSlab's chunks was outgrown, later chunks came from the malloc heap and less of a
 * deleted group went back to the OS (the memory bench: 0.17 to 0.29 × payload left, not 0.2).
 */
export class MessageLog {
  readonly #bytes: ByteSlab
  #length = 0
  /** Index of the first message kept; those before it were dropped. */
  #first = 0
  /** Index of the message whose record is first in #records (#first or less, until compacted). */
  #base = 0
  #records: number[] = []
  #senderIds: string[] = []
  /**
   * By byte slab chunk: the index of the last message placed in it (RELEASED once released; a
   * plain array, cheaper per append than a Map). A chunk is released once that message is
   * dropped and values no longer go into it.
   */
  readonly #chunkLast: number[] = []
  /** Chunks before this one are all released. */
  #chunksReleased = 0

  constructor(bytes = new ByteSlab()) {
    this.#bytes = bytes
  }

  /** Messages ever appended (kept or dropped): the seq of the last one. */
  get length(): number {
    return this.#length
  }

  /** The seq of the first message kept; length + 1 when none is. */
  get firstSeq(): number {
    return this.#first + 1
  }

  /** Stores a copy of the message with the next seq; returns that seq. */
  append(message: NewMessage, epochAfter: number): number {
    const location = this.#bytes.place(message.data)
    this.#chunkLast[chunkOf(location)] = this.#length
    // In field order (RECEIVED_AT, EPOCH, …); numbers only, so V8 keeps the array unboxed.
    this.#records.push(
      message.receivedAt,
      message.epoch ?? NaN,
      epochAfter,
      location,
      message.data.length,
      messageTypeCodes.get(message.messageType)!,
      message.contentType === null ? NO_CONTENT_TYPE : contentTypeCodes.get(message.contentType)!,
    )
    this.#senderIds.push(message.senderId)
    return ++this.#length
  }

  /**
   * Drops the oldest messages, from the first kept one on, while they were received before
   * `before` (unix ms), at most `max`: what is kept stays one run of seqs. Returns how many
   * were dropped.
   */
  dropReceivedBefore(before: number, max = Infinity): number {
    const from = this.#first
    const end = Math.min(this.#length, from + max)
    while (this.#first < end && this.#field(this.#first, RECEIVED_AT) < before) this.#first++
    const dropped = this.#first - from
    if (dropped === 0) return 0
    for (let chunk = this.#chunksReleased; chunk < this.#chunkLast.length; chunk++) {
      const last = this.#chunkLast[chunk]!
      if (last !== RELEASED && last < this.#first && this.#bytes.release(chunk)) this.#chunkLast[chunk] = RELEASED
    }
    while (this.#chunksReleased < this.#chunkLast.length && this.#chunkLast[this.#chunksReleased] === RELEASED) this.#chunksReleased++
    const stale = this.#first - this.#base
    if (worthCompacting(stale, this.#length - this.#base)) {
      this.#records = this.#records.slice(stale * FIELDS)
      this.#senderIds = this.#senderIds.slice(stale)
      this.#base = this.#first
    }
    return dropped
  }

  /** A new view of the stored bytes of message `index` (from 0). */
  data(index: number): Uint8Array {
    return this.#bytes.view(this.#field(index, LOCATION), this.#field(index, SIZE))
  }

  senderId(index: number): string {
    return this.#senderIds[index - this.#base]!
  }

  receivedAt(index: number): number {
    return this.#field(index, RECEIVED_AT)
  }

  epochAfter(index: number): number {
    return this.#field(index, EPOCH_AFTER)
  }

  messageType(index: number): MessageType {
    return MESSAGE_TYPES[this.#field(index, MESSAGE_TYPE)]!
  }

  /** The messages kept at indexes start to end (from 0, end excluded), as Array.prototype.slice takes them. */
  slice(start: number, end = this.#length): StoredMessage[] {
    const from = Math.max(this.#first, clampIndex(start, this.#length))
    const to = clampIndex(end, this.#length)
    const messages: StoredMessage[] = []
    for (let i = from; i < to; i++) {
      const epoch = this.#field(i, EPOCH)
      const contentType = this.#field(i, CONTENT_TYPE)
      messages.push({
        seq: i + 1,
        senderId: this.senderId(i),
        messageType: this.messageType(i),
        data: this.data(i),
        receivedAt: this.#field(i, RECEIVED_AT),
        epoch: Number.isNaN(epoch) ? null : epoch,
        contentType: contentType === NO_CONTENT_TYPE ? null : CONTENT_TYPES[contentType]!,
      })
    }
    return messages
  }

  #field(index: number, field: number): number {
    return this.#records[(index - this.#base) * FIELDS + field]!
  }
}

/** An index as Array.prototype.slice reads it: truncated, negative from the end, within 0..length. */
function clampIndex(index: number, length: number): number {
  const whole = Number.isNaN(index) ? 0 : Math.trunc(index)
  return whole < 0 ? Math.max(length + whole, 0) : Math.min(whole, length)
}
