import type { Delivery } from '../storage/store.js'
import { deliveryView, toBase64 } from '../schemas/views.js'

interface CachedTail {
  readonly groupId: string
  readonly groupSeq: number
  readonly kind: Delivery['kind']
  /** The JSON of every field but `seq`, without its opening brace. */
  readonly tail: string
}

/**
 * One message fans out to every member with only `seq` differing, and members' deliveries
 * share the message's bytes. So the JSON of the rest (base64 included, the costly part) is
 * made once per message and reused for every member: a WeakMap on the shared bytes, checked
 * against the fields that could differ for the same bytes (a relayed Welcome is both a group
 * message and a Welcome delivery).
 */
const tails = new WeakMap<Uint8Array, CachedTail>()

export function deliveryFrame(delivery: Delivery): string {
  let cached = tails.get(delivery.data)
  if (!cached || cached.groupSeq !== delivery.groupSeq || cached.kind !== delivery.kind || cached.groupId !== delivery.groupId) {
    const { seq: _seq, ...rest } = deliveryView(delivery, toBase64)
    cached = { groupId: delivery.groupId, groupSeq: delivery.groupSeq, kind: delivery.kind, tail: JSON.stringify(rest).slice(1) }
    tails.set(delivery.data, cached)
  }
  return `{"seq":${delivery.seq},${cached.tail}`
}
