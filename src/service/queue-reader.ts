import type { DeliveryPage, QueueRead, Store } from '../storage/store.js'

interface Pending {
  readonly read: QueueRead
  resolve(page: DeliveryPage): void
  reject(err: unknown): void
}

/**
 * Reads for live streams, batched: the reads asked for in one turn of the event loop go to
 * the store together (Store.readDeliveryPages), so a message that wakes the streams of a
 * hundred members costs one database round trip, not a hundred. Streams wake in setImmediate
 * callbacks (see Subscription), so the batch is sent from the next one.
 */
export class QueueReader {
  readonly #store: Store
  readonly #page: { readonly limit: number; readonly maxBytes: number }
  readonly #now: () => number
  #pending: Pending[] = []

  constructor(store: Store, page: { readonly limit: number; readonly maxBytes: number }, now: () => number) {
    this.#store = store
    this.#page = page
    this.#now = now
  }

  /** The client's queue after `after`, a page of at most `limit` deliveries within `maxBytes`, as Store.readDeliveries answers. */
  read(clientId: string, after: number): Promise<DeliveryPage> {
    return new Promise((resolve, reject) => {
      if (this.#pending.push({ read: { clientId, after }, resolve, reject }) === 1) setImmediate(() => this.#flush())
    })
  }

  #flush(): void {
    const batch = this.#pending
    this.#pending = []
    // Through a promise even if the store throws at once: every stream of the batch hears of it.
    Promise.resolve().then(() => this.#store.readDeliveryPages(batch.map((p) => p.read), this.#page.limit, this.#now(), this.#page.maxBytes)).then(
      (pages) => batch.forEach((p, i) => p.resolve(pages[i]!)),
      (err: unknown) => batch.forEach((p) => p.reject(err)),
    )
  }
}
