/**
 * The bytes of the log's messages that one read (one statement, one transaction) has met, by
 * group and seq: every delivery of a message gets the same array, as in the memory store, so the
 * streams one message wakes hold it once, not once per member (and its stream frame, cached per
 * array, is encoded once).
 */
export class MessageBytes {
  readonly #byGroup = new Map<string, Map<number, Uint8Array>>()

  /** The array of message `seq` of the group; `read` makes it the first time it is asked for. */
  of(groupId: string, seq: number, read: () => Uint8Array): Uint8Array {
    let group = this.#byGroup.get(groupId)
    if (!group) this.#byGroup.set(groupId, (group = new Map()))
    let bytes = group.get(seq)
    if (!bytes) group.set(seq, (bytes = read()))
    return bytes
  }
}
