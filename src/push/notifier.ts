/**
 * Push notifications: wakes clients that are offline when their queue grows, through a channel
 * (a webhook to the app's push gateway). A notification carries who has something new, never
 * what: the client then reads its queue as usual, so a lost or doubled notification loses or
 * doubles nothing. Time is cut into windows of `minIntervalMs` (PUSH_MIN_INTERVAL), and a client
 * is told at most once a window: its first new delivery at once, any later ones of the window
 * once when the window ends (so the last one is never left untold). Clients with a live stream or
 * a waiting long poll on this instance are not told; one that leaves without having handed over
 * a delivery (`missed`) is told then.
 *
 * Clients to tell wait in one set, so a client waits once however many deliveries it gets, and
 * calls take them in batches as calls free up: a slow gateway gets fewer, larger calls, and a
 * failing one is left alone until it should be tried again (its Retry-After, or a backoff),
 * its clients kept for the next call.
 */
export interface PushChannel {
  /** Tells the channel that these clients have new deliveries; resolves with what became of it (`signal`: the notifier stops). */
  send(clientIds: readonly string[], signal: AbortSignal): Promise<PushOutcome>
}

export type PushOutcome =
  | { readonly ok: true }
  /**
   * `retry`: worth trying again (a timeout, 408, 429, 5xx), after `retryAfterMs` when the receiver
   * said; `tooLarge`: the receiver refused the body's size (413).
   */
  | { readonly ok: false; readonly retry: boolean; readonly tooLarge?: boolean; readonly retryAfterMs?: number; readonly problem: string }

/** What the notifier counts, for GET /metrics. */
export interface PushCounts {
  /** A client whose queue grew: notified, skipped because it listens on this instance, or dropped (too many waiting). */
  pushClient(result: 'notified' | 'listening' | 'dropped'): void
  /** A call of the channel: delivered, retried (a failure worth another try: its clients wait for the next call), failed (given up). */
  pushBatch(outcome: 'delivered' | 'retried' | 'failed'): void
}

export interface PushNotifierOptions {
  readonly channel: PushChannel
  /** PUSH_MIN_INTERVAL: the window in which a client is told at most once; 0 tells every time. */
  readonly minIntervalMs: number
  /** Whether the client listens on this instance (a live stream, a long poll): then it is not told. */
  readonly listening: (clientId: string) => boolean
  readonly log: { warn(obj: object, msg: string): void; error(obj: object, msg: string): void }
  readonly counts?: PushCounts
  /** Injected for tests; unix milliseconds. */
  readonly now?: () => number
}

/** Clients per call of the channel, at most. */
export const PUSH_BATCH_SIZE = 1000
/** Body bytes per call (the JSON of the ids), at first; halved whenever the receiver answers 413, down to calls of one client. */
export const PUSH_BATCH_BYTES = 64 * 1024
/** Calls of the channel at once. */
export const PUSH_CONCURRENCY = 4
/** Clients waiting to be told, at most; beyond, new ones are dropped (and counted). */
export const PUSH_MAX_WAITING = 100_000
/** The first wait after a failure; it doubles with each failure in a row. */
const RETRY_BASE_MS = 1000
/** The longest pause after a failure, whatever Retry-After says. */
export const PUSH_MAX_RETRY_DELAY_MS = 5 * 60_000
/** Envelope of a webhook body around the ids: {"type":"deliveries","clients":[…]}. */
const ENVELOPE_BYTES = 64

export class PushNotifier {
  readonly #channel: PushChannel
  readonly #intervalMs: number
  readonly #listening: (clientId: string) => boolean
  readonly #log: PushNotifierOptions['log']
  readonly #counts: PushCounts | undefined
  readonly #now: () => number
  /** The window `#told` and `#later` are of: floor(now / interval). */
  #window = -1
  /** Clients told in this window. */
  #told = new Set<string>()
  /** Clients to tell when this window ends. */
  #later = new Set<string>()
  #laterTimer: NodeJS.Timeout | undefined
  /** Clients to tell in the next calls, in order. */
  readonly #waiting = new Set<string>()
  #pumpScheduled = false
  #inFlight = 0
  #maxBatchBytes = PUSH_BATCH_BYTES
  /** After a failure: no call before this (unix ms). */
  #pausedUntil = 0
  #failuresInARow = 0
  /** Counts the pauses: the calls in flight when one began fail for the same outage, and count once. */
  #pauses = 0
  #resumeTimer: NodeJS.Timeout | undefined
  readonly #stop = new AbortController()
  #closed = false

  constructor(options: PushNotifierOptions) {
    this.#channel = options.channel
    this.#intervalMs = options.minIntervalMs
    this.#listening = options.listening
    this.#log = options.log
    this.#counts = options.counts
    this.#now = options.now ?? Date.now
  }

  /** These clients' queues grew (never blocks: the channel is called later). */
  notify(clientIds: readonly string[]): void {
    if (this.#closed || clientIds.length === 0) return
    this.#turnWindow()
    for (const clientId of clientIds) {
      if (!this.#told.has(clientId)) this.#tell(clientId)
      else this.#admit(this.#later, clientId)
    }
    this.#armLater()
    this.#schedulePump()
  }

  /**
   * The client stopped listening here without handing over all it was woken for (a long poll
   * answered before a delivery it did not read, a stream that dropped): it is told as if the
   * delivery came now.
   */
  missed(clientId: string): void {
    if (this.#closed) return
    // Told at once, even if told earlier in this window: that notification brought it here.
    this.#turnWindow()
    this.#later.delete(clientId)
    this.#tell(clientId)
    this.#schedulePump()
  }

  /** Stops: nothing more is sent, and calls in flight are abandoned (at once, not awaited). */
  close(): void {
    this.#closed = true
    this.#stop.abort()
    clearTimeout(this.#laterTimer)
    clearTimeout(this.#resumeTimer)
    this.#later.clear()
    this.#waiting.clear()
  }

  #tell(clientId: string): void {
    if (this.#listening(clientId)) {
      this.#counts?.pushClient('listening')
      return
    }
    if (this.#intervalMs > 0) this.#told.add(clientId)
    this.#wait(clientId)
  }

  #wait(clientId: string): void {
    if (this.#admit(this.#waiting, clientId)) this.#counts?.pushClient('notified')
  }

  /**
   * Adds the client to a set of clients waiting (for a call, or for their window's end) unless it
   * is there already or the set holds PUSH_MAX_WAITING (then it is dropped, and counted); true
   * when added.
   */
  #admit(set: Set<string>, clientId: string): boolean {
    if (set.has(clientId)) return false
    if (set.size >= PUSH_MAX_WAITING) {
      this.#counts?.pushClient('dropped')
      return false
    }
    set.add(clientId)
    return true
  }

  /**
   * When a new window has begun: the clients left for the end of the last one are told now
   * (as the first of the new one), and everyone else may be told at once again.
   */
  #turnWindow(): void {
    if (this.#intervalMs === 0) return
    const window = Math.floor(this.#now() / this.#intervalMs)
    if (window === this.#window) return
    this.#window = window
    const later = this.#later
    this.#told = new Set()
    this.#later = new Set()
    for (const clientId of later) this.#tell(clientId)
  }

  /** Wakes at the end of the window when clients wait for it. */
  #armLater(): void {
    if (this.#laterTimer !== undefined || this.#later.size === 0) return
    const end = (this.#window + 1) * this.#intervalMs
    this.#laterTimer = setTimeout(() => {
      this.#laterTimer = undefined
      if (this.#closed) return
      this.#turnWindow()
      // A timer may fire a little early by the clock: then it waits again.
      this.#armLater()
      this.#schedulePump()
    }, Math.max(1, end - this.#now()))
    this.#laterTimer.unref()
  }

  /** Calls go out after this turn of the event loop, so the clients of one turn share a call. */
  #schedulePump(): void {
    if (this.#pumpScheduled || this.#waiting.size === 0) return
    this.#pumpScheduled = true
    setImmediate(() => {
      this.#pumpScheduled = false
      this.#pump()
    })
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < PUSH_CONCURRENCY && this.#waiting.size > 0) {
      const pause = this.#pausedUntil - this.#now()
      if (pause > 0) {
        if (this.#resumeTimer === undefined) {
          this.#resumeTimer = setTimeout(() => {
            this.#resumeTimer = undefined
            this.#pump()
          }, pause)
          this.#resumeTimer.unref()
        }
        return
      }
      const batch = this.#takeBatch()
      this.#inFlight++
      void this.#send(batch).finally(() => {
        this.#inFlight--
        this.#pump()
      })
    }
  }

  /** The first waiting clients, as many as fit one call (always at least one). */
  #takeBatch(): string[] {
    const batch: string[] = []
    let bytes = ENVELOPE_BYTES
    for (const clientId of this.#waiting) {
      const size = Buffer.byteLength(JSON.stringify(clientId)) + 1
      if (batch.length > 0 && (batch.length === PUSH_BATCH_SIZE || bytes + size > this.#maxBatchBytes)) break
      batch.push(clientId)
      bytes += size
    }
    for (const clientId of batch) this.#waiting.delete(clientId)
    return batch
  }

  async #send(batch: readonly string[]): Promise<void> {
    const pauses = this.#pauses
    let outcome: PushOutcome
    try {
      outcome = await this.#channel.send(batch, this.#stop.signal)
    } catch (err) {
      // A channel reports failures as outcomes; anything thrown is a bug, not worth a retry.
      outcome = { ok: false, retry: false, problem: (err as Error).message }
    }
    if (this.#closed) return
    if (outcome.ok) {
      this.#failuresInARow = 0
      this.#counts?.pushBatch('delivered')
      return
    }
    const context = { clients: batch.length, problem: outcome.problem }
    // The gateway answered: it is up, whatever it said.
    if (!outcome.retry) this.#failuresInARow = 0
    if (outcome.tooLarge && batch.length > 1) {
      // Smaller calls from now on (down to one client a call, which a 413 then drops); these clients go in them.
      this.#maxBatchBytes = Math.floor(this.#maxBatchBytes / 2)
      this.#counts?.pushBatch('retried')
      this.#log.warn({ ...context, max_body_bytes: this.#maxBatchBytes }, 'Push gateway refused the size of a call; sending smaller ones')
      this.#requeue(batch)
      return
    }
    if (!outcome.retry) {
      this.#counts?.pushBatch('failed')
      this.#log.error(context, 'Push notification not delivered; the clients read their queues when they next connect')
      return
    }
    // The gateway is down or busy: no call until it should be tried again (its Retry-After, but
    // never sooner than the backoff); the clients wait.
    this.#counts?.pushBatch('retried')
    this.#requeue(batch)
    if (pauses !== this.#pauses) return
    this.#pauses++
    this.#failuresInARow++
    const backoff = RETRY_BASE_MS * 2 ** Math.min(this.#failuresInARow - 1, 20)
    const delay = Math.min(Math.max(outcome.retryAfterMs ?? 0, backoff), PUSH_MAX_RETRY_DELAY_MS)
    this.#pausedUntil = this.#now() + delay
    this.#log.warn({ ...context, retry_in_ms: delay }, 'Push notification failed; its clients wait for the next call')
  }

  #requeue(batch: readonly string[]): void {
    for (const clientId of batch) this.#admit(this.#waiting, clientId)
  }
}
