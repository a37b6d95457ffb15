/**
 * Wakes live streams when a client's queue grows. It carries no data: a stream that wakes
 * reads from the store at its own cursor, so nothing can be lost or doubled between replay
 * and live delivery. In one process this is a map of listeners; across instances a database
 * notification (or any broker) can implement the same two methods.
 */
export interface DeliveryBus {
  publish(clientIds: readonly string[]): void
  /** Returns the function that unsubscribes. */
  subscribe(clientId: string, listener: () => void): () => void
  /** Whether the client listens on this instance (a live stream, a waiting long poll). */
  listening(clientId: string): boolean
  /**
   * A listener that has unsubscribed says it did not hand over all it was woken for (a long poll
   * answered before a later delivery, a stream that dropped): when the client has no other
   * listener here, the handler of `whenMissed` (push notifications) hears of it.
   */
  missed(clientId: string): void
  /** Sets the one handler of `missed`. */
  whenMissed(handler: (clientId: string) => void): void
}

export class LocalDeliveryBus implements DeliveryBus {
  readonly #listeners = new Map<string, Set<() => void>>()

  publish(clientIds: readonly string[]): void {
    for (const clientId of clientIds) {
      const listeners = this.#listeners.get(clientId)
      if (listeners) for (const listener of listeners) listener()
    }
  }

  /** Wakes every stream: after a notification channel was down, anything may have been missed. */
  publishAll(): void {
    this.publish([...this.#listeners.keys()])
  }

  #onMissed: ((clientId: string) => void) | undefined

  listening(clientId: string): boolean {
    return this.#listeners.has(clientId)
  }

  missed(clientId: string): void {
    if (!this.#listeners.has(clientId)) this.#onMissed?.(clientId)
  }

  whenMissed(handler: (clientId: string) => void): void {
    this.#onMissed = handler
  }

  subscribe(clientId: string, listener: () => void): () => void {
    let listeners = this.#listeners.get(clientId)
    if (!listeners) this.#listeners.set(clientId, (listeners = new Set()))
    listeners.add(listener)
    return () => {
      listeners.delete(listener)
      if (listeners.size === 0 && this.#listeners.get(clientId) === listeners) this.#listeners.delete(clientId)
    }
  }
}
