import { ByteSlab } from './byte-slab.js'
import { CONTENT_TYPES, MESSAGE_TYPES, type ContentType, type MessageType, type NewMessage, type StoredMessage } from './store.js'

/** The contentType code of a message without one (opaque bytes). */
const NO_CONTENT_TYPE = 255
const messageTypeCodes = new Map<MessageType, number>(MESSAGE_TYPES.map((type, code) => [type, code]))
const contentTypeCodes = new Map<ContentType, number>(CONTENT_TYPES.map((type, code) => [type, code]))

/**
 * A group's history: append-only, never trimmed, so message i (from 0) has seq i + 1. Kept in
 * columns (typed arrays that double as they fill, and one array of shared senderId strings)
 * with the bytes in a ByteSlab: a stored message costs about 50 bytes besides its data, where
 * a StoredMessage object and its Uint8Array view cost about 250. Objects and views are made
 * only for what is read.
 */
export class MessageLog {
  readonly #bytes: ByteSlab
  #length = 0
  #receivedAt = new Float64Array(8)
  /** NaN for null (Welcomes and opaque bytes). */
  #epoch = new Float64Array(8)
  /** The group's epoch once the message was accepted (what a retry is answered with). */
  #epochAfter = new Float64Array(8)
  /** Where ByteSlab.place() put the bytes. */
  #location = new Float64Array(8)
  #size = new Uint32Array(8)
  #messageType = new Uint8Array(8)
  #contentType = new Uint8Array(8)
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
    if (i === this.#receivedAt.length) this.#grow(i * 2)
    this.#receivedAt[i] = message.receivedAt
    this.#epoch[i] = message.epoch ?? NaN
    this.#epochAfter[i] = epochAfter
    this.#location[i] = this.#bytes.place(message.data)
    this.#size[i] = message.data.length
    this.#messageType[i] = messageTypeCodes.get(message.messageType)!
    this.#contentType[i] = message.contentType === null ? NO_CONTENT_TYPE : contentTypeCodes.get(message.contentType)!
    this.#senderIds.push(message.senderId)
    this.#length = i + 1
    return i + 1
  }

  /** A new view of the stored bytes of message `index` (from 0). */
  data(index: number): Uint8Array {
    return this.#bytes.view(this.#location[index]!, this.#size[index]!)
  }

  receivedAt(index: number): number {
    return this.#receivedAt[index]!
  }

  epochAfter(index: number): number {
    return this.#epochAfter[index]!
  }

  messageType(index: number): MessageType {
    return MESSAGE_TYPES[this.#messageType[index]!]!
  }

  /** The messages at indexes start to end (from 0, end excluded), as Array.prototype.slice takes them. */
  slice(start: number, end = this.#length): StoredMessage[] {
    const from = clampIndex(start, this.#length)
    const to = clampIndex(end, this.#length)
    const messages: StoredMessage[] = []
    for (let i = from; i < to; i++) {
      const epoch = this.#epoch[i]!
      const contentType = this.#contentType[i]!
      messages.push({
        seq: i + 1,
        senderId: this.#senderIds[i]!,
        messageType: this.messageType(i),
        data: this.data(i),
        receivedAt: this.#receivedAt[i]!,
        epoch: Number.isNaN(epoch) ? null : epoch,
        contentType: contentType === NO_CONTENT_TYPE ? null : CONTENT_TYPES[contentType]!,
      })
    }
    return messages
  }

  #grow(capacity: number): void {
    this.#receivedAt = grown(this.#receivedAt, capacity)
    this.#epoch = grown(this.#epoch, capacity)
    this.#epochAfter = grown(this.#epochAfter, capacity)
    this.#location = grown(this.#location, capacity)
    this.#size = grown(this.#size, capacity)
    this.#messageType = grown(this.#messageType, capacity)
    this.#contentType = grown(this.#contentType, capacity)
  }
}

function grown<T extends Float64Array | Uint32Array | Uint8Array>(column: T, capacity: number): T {
  const next = new (column.constructor as new (length: number) => T)(capacity)
  next.set(column)
  return next
}

/** An index as Array.prototype.slice reads it: truncated, negative from the end, within 0..length. */
function clampIndex(index: number, length: number): number {
  const whole = Number.isNaN(index) ? 0 : Math.trunc(index)
  return whole < 0 ? Math.max(length + whole, 0) : Math.min(whole, length)
}
