import { ByteSlab } from './byte-slab.js'
import { CONTENT_TYPES, MESSAGE_TYPES, type ContentType, type MessageType, type NewMessage, type StoredMessage } from './store.js'

// The numbers of message i are #numbers[i * NUMBERS + field], its type codes #codes[i * CODES + field].
const RECEIVED_AT = 0
/** NaN for null (Welcomes and opaque bytes). */
const EPOCH = 1
/** The group's epoch once the message was accepted (what a retry is answered with). */
const EPOCH_AFTER = 2
/** Where ByteSlab.place() put the bytes, and how many. */
const LOCATION = 3
const SIZE = 4
const NUMBERS = 5
const MESSAGE_TYPE = 0
const CONTENT_TYPE = 1
const CODES = 2
/** The contentType code of a message without one (opaque bytes). */
const NO_CONTENT_TYPE = 255
const messageTypeCodes = new Map<MessageType, number>(MESSAGE_TYPES.map((type, code) => [type, code]))
const contentTypeCodes = new Map<ContentType, number>(CONTENT_TYPES.map((type, code) => [type, code]))

/**
 * A group's history: append-only, never trimmed, so message i (from 0) has seq i + 1. Kept as
 * fixed-size records in two typed arrays that double as they fill (two, not one per field:
 * each typed array costs a few hundred bytes, and most groups hold few messages), one array
 * of shared senderId strings, and the bytes in a ByteSlab. A stored message costs about 50
 * bytes besides its data, where a StoredMessage object and its Uint8Array view cost about 250;
 * objects and views are made only for what is read.
 */
export class MessageLog {
  readonly #bytes: ByteSlab
  #length = 0
  #numbers = new Float64Array(4 * NUMBERS)
  #codes = new Uint8Array(4 * CODES)
  readonly #senderIds: string[] = []

  constructor(bytes = new ByteSlab()) {
    this.#bytes = bytes
  }

  get length(): number {
    return this.#length
  }

  /** Stores a copy of the message with the next seq; returns that seq. */
  append(message: NewMessage, epochAfter: number): number {
    const i = this.#length
    if ((i + 1) * NUMBERS > this.#numbers.length) {
      this.#numbers = grown(this.#numbers, 2 * this.#numbers.length)
      this.#codes = grown(this.#codes, 2 * this.#codes.length)
    }
    const numbers = i * NUMBERS
    this.#numbers[numbers + RECEIVED_AT] = message.receivedAt
    this.#numbers[numbers + EPOCH] = message.epoch ?? NaN
    this.#numbers[numbers + EPOCH_AFTER] = epochAfter
    this.#numbers[numbers + LOCATION] = this.#bytes.place(message.data)
    this.#numbers[numbers + SIZE] = message.data.length
    const codes = i * CODES
    this.#codes[codes + MESSAGE_TYPE] = messageTypeCodes.get(message.messageType)!
    this.#codes[codes + CONTENT_TYPE] = message.contentType === null ? NO_CONTENT_TYPE : contentTypeCodes.get(message.contentType)!
    this.#senderIds.push(message.senderId)
    this.#length = i + 1
    return i + 1
  }

  /** A new view of the stored bytes of message `index` (from 0). */
  data(index: number): Uint8Array {
    return this.#bytes.view(this.#number(index, LOCATION), this.#number(index, SIZE))
  }

  receivedAt(index: number): number {
    return this.#number(index, RECEIVED_AT)
  }

  epochAfter(index: number): number {
    return this.#number(index, EPOCH_AFTER)
  }

  messageType(index: number): MessageType {
    return MESSAGE_TYPES[this.#codes[index * CODES + MESSAGE_TYPE]!]!
  }

  /** The messages at indexes start to end (from 0, end excluded), as Array.prototype.slice takes them. */
  slice(start: number, end = this.#length): StoredMessage[] {
    const from = clampIndex(start, this.#length)
    const to = clampIndex(end, this.#length)
    const messages: StoredMessage[] = []
    for (let i = from; i < to; i++) {
      const epoch = this.#number(i, EPOCH)
      const contentType = this.#codes[i * CODES + CONTENT_TYPE]!
      messages.push({
        seq: i + 1,
        senderId: this.#senderIds[i]!,
        messageType: this.messageType(i),
        data: this.data(i),
        receivedAt: this.#number(i, RECEIVED_AT),
        epoch: Number.isNaN(epoch) ? null : epoch,
        contentType: contentType === NO_CONTENT_TYPE ? null : CONTENT_TYPES[contentType]!,
      })
    }
    return messages
  }

  #number(index: number, field: number): number {
    return this.#numbers[index * NUMBERS + field]!
  }
}

function grown<T extends Float64Array | Uint8Array>(column: T, capacity: number): T {
  const next = new (column.constructor as new (length: number) => T)(capacity)
  next.set(column)
  return next
}

/** An index as Array.prototype.slice reads it: truncated, negative from the end, within 0..length. */
function clampIndex(index: number, length: number): number {
  const whole = Number.isNaN(index) ? 0 : Math.trunc(index)
  return whole < 0 ? Math.max(length + whole, 0) : Math.min(whole, length)
}
