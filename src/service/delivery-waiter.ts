import type { DeliveryBus } from './delivery-bus.js'

/**
 * Long polling of a client's queue (`GET /clients/{client}/messages?wait=N`): wakes a reader when
 * a delivery for the client is queued, through the same bus that wakes live streams (across
 * instances on PostgreSQL). Subscribed from construction, before the reader's first read, so a
 * delivery queued between that read and the wait is not missed. The bus carries no data: after a
 * wake the reader reads its page again.
 */
export class DeliveryWaiter {
  #woken = false
  #over = false
  #resolve: ((woke: boolean) => void) | undefined
  readonly #timer: NodeJS.Timeout
  readonly #unsubscribe: () => void
  readonly #bus: DeliveryBus
  readonly #clientId: string
  readonly #signal: AbortSignal | undefined
  readonly #onAbort = () => this.#end()

  /** Waits at most `waitMs` in all, less if `signal` aborts (the client went away, the service stops). */
  constructor(bus: DeliveryBus, clientId: string, waitMs: number, signal?: AbortSignal) {
    this.#bus = bus
    this.#clientId = clientId
    this.#unsubscribe = bus.subscribe(clientId, () => {
      this.#woken = true
      this.#settle(true)
    })
    this.#timer = setTimeout(this.#onAbort, waitMs)
    this.#signal = signal
    if (signal?.aborted) this.#over = true
    else signal?.addEventListener('abort', this.#onAbort, { once: true })
  }

  /** True once a delivery was queued since the last call (at once if one was); false when the time is up or the wait aborted. */
  next(): Promise<boolean> {
    if (this.#over) return Promise.resolve(false)
    if (this.#woken) {
      this.#woken = false
      return Promise.resolve(true)
    }
    return new Promise((resolve) => (this.#resolve = resolve))
  }

  /**
   * Stops listening; call once the answer is made. A delivery queued after the last read is not
   * in the answer: the bus hears it was missed (push notifications tell the client).
   */
  close(): void {
    const missed = this.#woken
    this.#end()
    this.#unsubscribe()
    this.#signal?.removeEventListener('abort', this.#onAbort)
    if (missed) this.#bus.missed(this.#clientId)
  }

  #end(): void {
    this.#over = true
    clearTimeout(this.#timer)
    this.#settle(false)
  }

  #settle(woke: boolean): void {
    const resolve = this.#resolve
    if (!resolve) return
    this.#resolve = undefined
    this.#woken = false
    resolve(woke)
  }
}
