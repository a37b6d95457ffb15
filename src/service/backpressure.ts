/**
 * How a live stream waits for a consumer that has fallen behind, whatever the transport
 * (a WebSocket, a TCP connection). The transport reports its unsent bytes; the stream waits
 * until they are down to half the limit, and gives up on a consumer that takes nothing for
 * the stall timeout. A consumer that reads slowly but steadily is never cut off: every
 * drop of the backlog restarts the clock.
 */

export interface Backlog {
  /** Bytes written to the transport and not yet taken by the peer. */
  buffered(): number
  /** False once the transport is closed or closing. */
  open(): boolean
}

export interface BackpressureLimits {
  /** Unsent bytes above which the stream stops writing and waits. */
  readonly maxBufferedBytes: number
  /** How long the backlog may stay without shrinking before the consumer is dropped. */
  readonly stallTimeoutMs: number
}

/** room: write on; closed: the transport went away; stalled: drop the consumer. */
export type RoomOutcome = 'room' | 'closed' | 'stalled'

const POLL_MS = 20

export function isFull(backlog: Backlog, limits: BackpressureLimits): boolean {
  return backlog.buffered() > limits.maxBufferedBytes
}

/** Resolves once the backlog is down to half the limit, the transport closed, or the consumer stalled. */
export function waitForRoom(backlog: Backlog, limits: BackpressureLimits): Promise<RoomOutcome> {
  let lowest = Number.POSITIVE_INFINITY
  let progressAt = Date.now()
  return new Promise((resolve) => {
    const check = () => {
      if (!backlog.open()) return resolve('closed')
      const buffered = backlog.buffered()
      if (buffered <= limits.maxBufferedBytes / 2) return resolve('room')
      if (buffered < lowest) {
        lowest = buffered
        progressAt = Date.now()
      } else if (Date.now() - progressAt > limits.stallTimeoutMs) {
        return resolve('stalled')
      }
      setTimeout(check, POLL_MS)
    }
    check()
  })
}
