import type net from 'node:net'
import type { Logger } from 'pino'
import { whenExpired } from '../auth/expiry.js'
import type { Caller } from '../auth/token-verifier.js'
import type { ServiceErrorResponse } from '../schemas/tcp.js'
import { JsonSplitter, type Frame } from './framing.js'
import { LiveStream, type LiveStreamOptions } from './live-stream.js'
import type { Session } from './operation.js'
import type { Protocol } from './protocol.js'

export interface ConnectionOptions {
  readonly protocol: Protocol
  readonly maxMessageBytes: number
  readonly log: Pick<Logger, 'debug' | 'error'>
  /** 0 disables. */
  readonly idleTimeoutMs: number
  /** Limits of the live stream a Subscribe turns this connection into. */
  readonly stream: LiveStreamOptions
  readonly onClose: () => void
}

/** After we end our side, how long the peer gets to read the answer and close before the socket is cut. */
const LINGER_MS = 2000

/**
 * One client connection. Requests are answered one at a time, in the order they arrived,
 * even though the service is async: a read that arrives while answers are being produced
 * pauses the socket until they are written, so a client that floods requests or never reads
 * its answers only fills its own buffers (and the kernel's), never the process. (Pausing
 * only then spares a request-answer client two syscalls a request.) Answers produced in one
 * turn of the event loop leave in one write. Nothing here throws: a misbehaving socket is
 * logged and destroyed.
 *
 * After a Subscribe the connection also carries a LiveStream: its Delivery lines are written
 * as they come, between the answers, which keep their order. A subscribed connection is not
 * ended by the client's half-close (`echo '{"type":"Subscribe",…}' | nc` tails a queue); it
 * lasts until either side closes it (LiveStream.peerEnded notices a client that went away).
 */
export class Connection {
  readonly #socket: net.Socket
  readonly #options: ConnectionOptions
  readonly #splitter: JsonSplitter
  /** Frames waiting for an answer; #head is the next one (no shift(), which is O(n)). */
  #queue: Frame[] = []
  #head = 0
  #pumping = false
  /** The client half-closed: answer what is left, then end. */
  #peerEnded = false
  /** No more requests are read (too large, or the server is closing); input is discarded. */
  #finishing = false
  #closed = false
  #wakeWriter: (() => void) | undefined
  /** Writes are being gathered until the next tick. */
  #corked = false
  readonly #uncork = () => {
    this.#corked = false
    this.#socket.uncork()
  }
  /** Set by a Subscribe; started once its answer is written. */
  #live: LiveStream | undefined
  readonly #session: Session
  /** AUTH=jwt: the verified token of this connection, and the timer that ends its stream when it expires. */
  #caller: Caller | null = null
  #cancelExpiry: (() => void) | undefined

  constructor(socket: net.Socket, options: ConnectionOptions) {
    this.#socket = socket
    this.#options = options
    this.#splitter = new JsonSplitter({ maxMessageBytes: options.maxMessageBytes })
    const subscribedAs = () => this.#live?.clientId
    const caller = () => this.#caller
    this.#session = {
      get subscribedAs() {
        return subscribedAs()
      },
      get caller() {
        return caller()
      },
      authenticate: (verified) => {
        this.#caller = verified
        this.#armExpiry()
      },
      stream: (clientId, open) => {
        this.#live = new LiveStream(socket, clientId, open, options.stream, (last) => this.#cut(last))
        if (this.#peerEnded) this.#live.peerEnded()
        // Whatever the timer did before there was a stream to end, this one ends with the token.
        this.#armExpiry()
      },
    }
    socket.on('data', (chunk: Buffer) => this.#guard(() => this.#onData(chunk)))
    socket.on('end', () => this.#guard(() => this.#onEnd()))
    socket.on('drain', () => this.#wake())
    socket.on('error', (err) => {
      options.log.debug({ err }, 'TCP client socket error')
      socket.destroy()
    })
    socket.on('close', () => {
      this.#closed = true
      this.#cancelExpiry?.()
      this.#live?.close()
      this.#wake()
      options.onClose()
    })
    if (options.idleTimeoutMs > 0) {
      socket.setTimeout(options.idleTimeoutMs, () => {
        options.log.debug('Closing idle TCP client')
        this.shutdown()
      })
    }
  }

  /** Server shutdown: read no more requests, answer those already received, then end. */
  shutdown(): void {
    this.#finishing = true
    this.#live?.close()
    if (!this.#pumping) this.#finish()
  }

  destroy(): void {
    this.#socket.destroy()
  }

  #onData(chunk: Buffer): void {
    if (this.#finishing) return
    const frames = this.#splitter.push(chunk)
    if (frames.length === 0) return
    for (const frame of frames) this.#queue.push(frame)
    if (this.#pumping) this.#socket.pause()
    else void this.#pump()
  }

  #onEnd(): void {
    this.#peerEnded = true
    this.#live?.peerEnded()
    // A last request that ends exactly at EOF (`{"type":"ListKeyPackages"}` then FIN) is answered too.
    if (!this.#finishing) for (const frame of this.#splitter.end()) this.#queue.push(frame)
    void this.#pump()
  }

  /** A throw from an event handler would crash the process; a bug here costs one connection. */
  #guard(handle: () => void): void {
    try {
      handle()
    } catch (err) {
      this.#options.log.error({ err }, 'TCP connection failed')
      this.#socket.destroy()
    }
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#head < this.#queue.length && !this.#closed) {
        const frame = this.#queue[this.#head++] as Frame
        const response = await this.#options.protocol.answer(frame, this.#session)
        // Closed, or ended by the live stream (a slow consumer is cut off): nothing more is written.
        if (this.#closed || this.#socket.writableEnded) break
        // Pipelined answers are gathered into one write (uncorked on the next tick, so none waits
        // for a slow one); a lone answer is one write, one segment for clients that read once.
        if (!this.#corked && this.#head < this.#queue.length) {
          this.#corked = true
          this.#socket.cork()
          process.nextTick(this.#uncork)
        }
        const flushed = this.#socket.write(`${JSON.stringify(response)}\n`)
        if (!this.#finishing) this.#live?.start()
        if (frame.kind === 'too_large') {
          this.#options.log.debug('TCP request too large; closing the connection')
          this.#finishing = true
          break
        }
        if (!flushed) await this.#writable()
      }
    } catch (err) {
      // protocol.answer never rejects; this is a bug, and only this connection pays for it.
      this.#options.log.error({ err }, 'TCP connection failed')
      this.#socket.destroy()
    } finally {
      this.#queue = []
      this.#head = 0
      this.#pumping = false
    }
    if (this.#closed) return
    if (this.#finishing) this.#finish()
    else if (this.#peerEnded && !this.#live) this.#socket.end()
    else if (this.#socket.isPaused()) this.#socket.resume()
  }

  /** Ends our side once the answers are written, and keeps reading (and discarding) so the peer's FIN is seen and its unread data causes no reset. */
  #finish(): void {
    this.#live?.close()
    if (this.#closed) return
    this.#finishing = true
    this.#socket.end()
    this.#socket.resume()
    setTimeout(() => this.#socket.destroy(), LINGER_MS).unref()
  }

  /** The live stream gives up (a slow consumer, a failed store): a last Error line if it can still be written, then the end. */
  #cut(last: ServiceErrorResponse): void {
    if (this.#closed || this.#socket.writableEnded) return
    this.#options.log.debug({ code: last.code, clientId: this.#live?.clientId }, 'Ending a TCP live stream')
    this.#socket.write(`${JSON.stringify(last)}\n`)
    this.#finish()
  }

  /**
   * A subscribed connection lives no longer than its token: at expiry (unless a fresh token was
   * sent with Authenticate) its stream ends with an Error line, as a WebSocket stream closes with 4001.
   */
  #armExpiry(): void {
    this.#cancelExpiry?.()
    const caller = this.#caller
    if (caller === null) return
    this.#cancelExpiry = whenExpired(caller.expiresAt, () => {
      if (this.#live) this.#cut({ type: 'Error', message: 'Token expired: reconnect, Authenticate with a new token and Subscribe with your cursor', code: 'unauthenticated' })
    })
  }

  /** Resolves on 'drain' or 'close', whichever comes first. */
  #writable(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeWriter = resolve
    })
  }

  #wake(): void {
    const wake = this.#wakeWriter
    this.#wakeWriter = undefined
    wake?.()
  }
}
