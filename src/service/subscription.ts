import type { Logger } from 'pino'
import { isServiceError } from '../errors.js'
import type { Delivery, DeliveryPage } from '../storage/store.js'
import type { DeliveryBus } from './delivery-bus.js'
import type { QueueReader } from './queue-reader.js'

/** Where a live stream writes: a WebSocket, a TCP connection, … */
export interface DeliverySink {
  /** A page of deliveries in seq order, written in as few transport writes as it allows. */
  deliver(deliveries: readonly Delivery[]): void
  /** Retention dropped deliveries the client never acknowledged (RFC 9750 §5.3: it must know). */
  gap(gap: NonNullable<DeliveryPage['gap']>): void
  /** True while the transport holds more unsent bytes than it should. */
  readonly full: boolean
  /** Resolves true once the transport has room again, false when it gave up on a stalled consumer. */
  drained(): Promise<boolean>
  /** The stream cannot go on (the store failed); the sink should close. */
  fail(err: unknown): void
}

/** Deliveries per read of a live stream. */
export const STREAM_PAGE = 100
/**
 * Most message bytes handed to the sink at once (or one message, if larger): the sink's
 * backlog is checked between such slices, so a consumer that reads nothing costs at most its
 * buffer limit plus one slice, however large the messages of a page.
 */
export const STREAM_SLICE_BYTES = 256 * 1024
/** While the store's database is unreachable, a stream waits this long between attempts. */
const UNAVAILABLE_RETRY_MS = 1000

/** Counts live streams (ServiceMetrics). */
export interface StreamGauge {
  streamOpened(): void
  streamClosed(): void
}

/**
 * One live stream of a client's queue. It first replays what is queued after the cursor, then
 * follows new deliveries. Every delivery comes from the store at the cursor — the bus only
 * wakes the stream — so the switch from replay to live has no gap and no duplicate, and a slow
 * consumer costs at most one slice (STREAM_SLICE_BYTES) beyond the transport's buffer.
 */
export class Subscription {
  readonly #reader: QueueReader
  readonly #bus: DeliveryBus
  readonly #clientId: string
  readonly #sink: DeliverySink
  readonly #log: Pick<Logger, 'warn'>
  #cursor: number
  #closed = false
  #pumping = false
  #scheduled = false
  #dirty = false
  #unsubscribe: (() => void) | undefined
  #retry: NodeJS.Timeout | undefined
  readonly #gauge: StreamGauge | undefined
  /** Counted in the gauge: started and not closed since. */
  #counted = false

  constructor(options: { reader: QueueReader; bus: DeliveryBus; clientId: string; after: number; sink: DeliverySink; log: Pick<Logger, 'warn'>; gauge?: StreamGauge }) {
    this.#gauge = options.gauge
    this.#reader = options.reader
    this.#bus = options.bus
    this.#clientId = options.clientId
    this.#cursor = options.after
    this.#sink = options.sink
    this.#log = options.log
  }

  /** The seq of the last delivery handed to the sink. */
  get cursor(): number {
    return this.#cursor
  }

  get closed(): boolean {
    return this.#closed
  }

  /** Starts it once; after close, or a second time, nothing happens. */
  start(): void {
    if (this.#closed || this.#counted) return
    this.#counted = true
    this.#gauge?.streamOpened()
    // Listen before the first read, so nothing accepted in between is missed.
    this.#unsubscribe = this.#bus.subscribe(this.#clientId, () => this.#wake())
    this.#wake()
  }

  /**
   * Stops it. `dropped`: deliveries written to the client may never have arrived (its connection
   * broke after them). Then, or with a wake not yet handled, the bus hears that deliveries were
   * missed (push notifications tell the client).
   */
  close(options: { readonly dropped?: boolean } = {}): void {
    const missed = !this.#closed && this.#counted && (options.dropped === true || this.#scheduled || this.#pumping || this.#dirty)
    this.#closed = true
    clearTimeout(this.#retry)
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    if (this.#counted) {
      this.#counted = false
      this.#gauge?.streamClosed()
    }
    if (missed) this.#bus.missed(this.#clientId)
  }

  /**
   * Wakes are coalesced: the read waits for the rest of this turn of the event loop, so the
   * messages of a burst (several requests read in one go) go out as one page in one write,
   * not one write per message per member.
   */
  #wake(): void {
    if (this.#closed) return
    if (this.#pumping) {
      this.#dirty = true
      return
    }
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      if (this.#closed) return
      this.#pumping = true
      this.#pump().finally(() => {
        this.#pumping = false
      })
    })
  }

  async #pump(): Promise<void> {
    try {
      do {
        this.#dirty = false
        while (!this.#closed) {
          const page = await this.#reader.read(this.#clientId, this.#cursor)
          if (this.#closed) return
          if (page.gap) {
            this.#sink.gap(page.gap)
            this.#cursor = Math.max(this.#cursor, page.gap.firstAvailableSeq - 1)
          }
          if (page.deliveries.length === 0) break
          const delivered = await this.#deliver(page.deliveries)
          if (delivered === 'closed') return
          // A page that reached the queue's last seq was the whole queue when it was read: no read
          // to find it empty (a database round trip per wake per stream). Whatever came later woke
          // us: #dirty. A page cut short by its limit or its byte budget is read on.
          if (delivered === 'all' && page.deliveries.at(-1)!.seq >= page.lastSeq) break
        }
      } while (this.#dirty && !this.#closed)
    } catch (err) {
      if (isServiceError(err) && err.code === 'unavailable') {
        // A database outage is not the stream's fault: keep it open and read again shortly
        // (the notifications that would wake it may be down too).
        this.#log.warn({ clientId: this.#clientId }, 'Live stream waiting for the store to come back')
        this.#retry = setTimeout(() => this.#wake(), UNAVAILABLE_RETRY_MS)
        this.#retry.unref()
        return
      }
      this.#log.warn({ err, clientId: this.#clientId }, 'Live stream failed')
      this.close()
      this.#sink.fail(err)
    }
  }

  /**
   * Hands a page to the sink in slices of at most STREAM_SLICE_BYTES. When the sink's backlog is
   * full it waits for room, then lets the rest of the page go ('partly': it is read again from the
   * cursor), so a stream waiting on its consumer holds no page. 'closed': the consumer stalled.
   */
  async #deliver(deliveries: readonly Delivery[]): Promise<'all' | 'partly' | 'closed'> {
    let from = 0
    while (from < deliveries.length) {
      let to = from + 1
      let bytes = deliveries[from]!.data.length
      while (to < deliveries.length && bytes + deliveries[to]!.data.length <= STREAM_SLICE_BYTES) bytes += deliveries[to++]!.data.length
      this.#sink.deliver(from === 0 && to === deliveries.length ? deliveries : deliveries.slice(from, to))
      this.#cursor = deliveries[to - 1]!.seq
      from = to
      if (this.#sink.full) {
        if (!(await this.#sink.drained())) {
          this.close()
          return 'closed'
        }
        return from < deliveries.length ? 'partly' : 'all'
      }
    }
    return 'all'
  }
}
