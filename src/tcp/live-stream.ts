import type net from 'node:net'
import type { ServiceErrorResponse, TcpFrame } from '../schemas/tcp.js'
import { deliveryView, gapView, toByteArray } from '../schemas/views.js'
import { isFull, waitForRoom, type BackpressureLimits } from '../service/backpressure.js'
import type { DeliverySink, Subscription } from '../service/subscription.js'

export interface LiveStreamOptions extends BackpressureLimits {
  /**
   * Idle time before the OS sends TCP keep-alive probes on a subscribed connection, and how often
   * one the client half-closed is checked for a failed connection (peerEnded); 0 leaves both off.
   */
  readonly keepAliveMs: number
}

/** The defaults of STREAM_MAX_BUFFERED_BYTES, STREAM_STALL_TIMEOUT and STREAM_PING_INTERVAL. */
export const DEFAULT_LIVE_STREAM: LiveStreamOptions = { maxBufferedBytes: 1024 * 1024, stallTimeoutMs: 10_000, keepAliveMs: 30_000 }

/** The code of the Error frame a subscriber gets when it is cut off for reading nothing. */
export const SLOW_CONSUMER = 'slow_consumer'

/**
 * The live stream of one subscribed TCP connection: a Subscription (replay from the store at
 * its cursor, then live) writing one `Delivery` or `Gap` line per event. A page of lines is
 * one write of whole lines, so stream lines and the answers to requests on the same
 * connection never mix within a line.
 *
 * Backpressure: the stream stops writing while the socket holds more than maxBufferedBytes
 * unsent (socket.writableLength, beyond the kernel's buffers); a consumer that takes nothing
 * for stallTimeoutMs is sent a `slow_consumer` Error and the connection is ended. It resumes
 * by reconnecting with `after` = the last seq it received.
 */
export class LiveStream {
  readonly clientId: string
  readonly #socket: net.Socket
  readonly #options: LiveStreamOptions
  readonly #subscription: Subscription
  #started = false
  #closed = false
  /** The client half-closed: see peerEnded(). */
  #peerEnded = false
  #probe: NodeJS.Timeout | undefined

  /**
   * `open` builds the Subscription over this stream's sink and may throw (bad input);
   * `cut` ends the connection after writing a last Error frame.
   */
  constructor(socket: net.Socket, clientId: string, open: (sink: DeliverySink) => Subscription, options: LiveStreamOptions, cut: (last: ServiceErrorResponse) => void) {
    this.clientId = clientId
    this.#socket = socket
    this.#options = options
    const backlog = { buffered: () => socket.writableLength, open: () => writable(socket) }
    const sink: DeliverySink = {
      deliver: (deliveries) => this.#write(deliveries.map((d) => ({ type: 'Delivery', ...deliveryView(d, toByteArray) }))),
      gap: (gap) => this.#write([{ type: 'Gap', ...gapView(gap) }]),
      get full() {
        return isFull(backlog, options)
      },
      drained: async () => {
        const outcome = await waitForRoom(backlog, options)
        if (outcome === 'stalled') {
          cut({
            type: 'Error',
            message: `Slow consumer: nothing was read for ${options.stallTimeoutMs / 1000}s while deliveries were waiting; reconnect and Subscribe with after = the last seq you received`,
            code: SLOW_CONSUMER,
          })
        }
        return outcome === 'room'
      },
      fail: () => cut({ type: 'Error', message: 'Failed to stream: Internal server error; reconnect and Subscribe with after = the last seq you received', code: 'internal' }),
    }
    this.#subscription = open(sink)
  }

  /** Starts replaying and following, once the `Subscribed` answer is written; later calls do nothing. */
  start(): void {
    if (this.#started || this.#closed) return
    this.#started = true
    // A stream may be quiet for hours: the idle timeout no longer applies, and the OS's
    // keep-alive probes find a peer that vanished without a FIN (no frames a legacy line
    // reader would have to skip).
    this.#socket.setTimeout(0)
    if (this.#options.keepAliveMs > 0) this.#socket.setKeepAlive(true, this.#options.keepAliveMs)
    this.#subscription.start()
    this.#watchPeer()
  }

  /**
   * The client half-closed its side (`echo Subscribe | nc -N`): the stream goes on, but Node no
   * longer reads, so a client that closed entirely (or reset) would go unnoticed until two
   * deliveries were written to it, holding its socket and subscription meanwhile. Every
   * keep-alive period an empty write (no bytes on the wire) asks the kernel whether the
   * connection failed: the keep-alive probes, or any reset, tell it; the socket's error then
   * closes the connection.
   */
  peerEnded(): void {
    this.#peerEnded = true
    this.#watchPeer()
  }

  /** Stops the stream; nothing more is written. */
  close(): void {
    this.#closed = true
    clearInterval(this.#probe)
    this.#subscription.close()
  }

  #watchPeer(): void {
    if (!this.#peerEnded || !this.#started || this.#closed || this.#probe || this.#options.keepAliveMs <= 0) return
    this.#probe = setInterval(() => {
      // Anything still queued is written first, and its failure is reported the same way.
      if (writable(this.#socket) && this.#socket.writableLength === 0) this.#socket.write('')
    }, this.#options.keepAliveMs)
    this.#probe.unref()
  }

  /** Whole lines in one write, so a request's answer never lands inside a stream line. */
  #write(frames: readonly TcpFrame[]): void {
    if (this.#closed || !writable(this.#socket)) return
    let text = ''
    for (const frame of frames) text += `${JSON.stringify(frame)}\n`
    this.#socket.write(text)
  }
}

function writable(socket: net.Socket): boolean {
  return !socket.destroyed && !socket.writableEnded
}
