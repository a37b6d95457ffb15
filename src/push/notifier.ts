/**
 * Push notifications: wakes clients that are offline when their queue grows, through a channel
 * (a webhook to the app's push gateway). A notification carries who has something new, never
 * what: the client then reads its queue as usual, so a lost or doubled notification loses or
 * doubles nothing. Time is cut into windows of `minIntervalMs` (PUSH_MIN_INTERVAL), and a client
 * is told at most once a window: its first new delivery at once, any later ones of the window
 * once when the window ends (so the last one is never left untold). Clients with a live stream or
 * a waiting long poll on this instance are not told.
 */
export interface PushChannel {
  /** Tells the channel that these clients have new deliveries; resolves with what became of it (`signal`: the notifier stops). */
  send(clientIds: readonly string[], attempt: PushAttempt, signal: AbortSignal): Promise<PushOutcome>
}

/** One batch through its retries: the same id each time, so the receiver can drop a repeat. */
export interface PushAttempt {
  readonly id: string
  /** 1 for the first try. */
  readonly number: number
}

export type PushOutcome =
  | { readonly ok: true }
  /** `retry`: worth trying again (a timeout, 429, 5xx), after `retryAfterMs` when the receiver said. */
  | { readonly ok: false; readonly retry: boolean; readonly retryAfterMs?: number; readonly problem: string }

/** What the notifier counts, for GET /metrics. */
export interface PushCounts {
  /** A client whose queue grew: notified, or skipped because it listens on this instance. */
  pushClient(result: 'notified' | 'listening'): void
  /** A batch sent to the channel: delivered, retried (a failure worth another try), failed (given up). */
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
  readonly newId?: () => string
}

/** Clients per call of the channel. */
export const PUSH_BATCH_SIZE = 1000
/** Calls of the channel at once; more wait (their clients merge into the next batches). */
export const PUSH_CONCURRENCY = 4
/** Tries of one batch: the first and four retries (1, 2, 4, 8 s apart unless the receiver says). */
export const PUSH_ATTEMPTS = 5
const RETRY_BASE_MS = 1000
/** The longest wait before a retry, whatever Retry-After says. */
export const PUSH_MAX_RETRY_DELAY_MS = 5 * 60_000

interface Batch {
  readonly clients: readonly string[]
  readonly id: string
  readonly attempt: number
}

export class PushNotifier {
  readonly #channel: PushChannel
  readonly #intervalMs: number
  readonly #listening: (clientId: string) => boolean
  readonly #log: PushNotifierOptions['log']
  readonly #counts: PushCounts | undefined
  readonly #now: () => number
  readonly #newId: () => string
  /** The window `#told` and `#later` are of: floor(now / interval). */
  #window = -1
  /** Clients told in this window. */
  #told = new Set<string>()
  /** Clients to tell when this window ends. */
  #later = new Set<string>()
  #laterTimer: NodeJS.Timeout | undefined
  /** Clients to tell in the next batch. */
  readonly #due = new Set<string>()
  #flushScheduled = false
  /** Batches waiting for a free call (retries first) and the calls in flight. */
  readonly #waiting: Batch[] = []
  #inFlight = 0
  readonly #retryTimers = new Set<NodeJS.Timeout>()
  readonly #sending = new Set<Promise<void>>()
  readonly #stop = new AbortController()
  #closed = false

  constructor(options: PushNotifierOptions) {
    this.#channel = options.channel
    this.#intervalMs = options.minIntervalMs
    this.#listening = options.listening
    this.#log = options.log
    this.#counts = options.counts
    this.#now = options.now ?? Date.now
    this.#newId = options.newId ?? (() => `msg_${crypto.randomUUID()}`)
  }

  /** These clients' queues grew (never blocks: the channel is called later). */
  notify(clientIds: readonly string[]): void {
    if (this.#closed || clientIds.length === 0) return
    this.#turnWindow()
    for (const clientId of clientIds) {
      if (!this.#told.has(clientId)) this.#tell(clientId)
      else if (!this.#later.has(clientId)) this.#later.add(clientId)
    }
    this.#armLater()
    this.#scheduleFlush()
  }

  /** Stops: nothing more is sent, and calls in flight are abandoned. */
  async close(): Promise<void> {
    this.#closed = true
    this.#stop.abort()
    clearTimeout(this.#laterTimer)
    for (const timer of this.#retryTimers) clearTimeout(timer)
    this.#retryTimers.clear()
    this.#later.clear()
    this.#due.clear()
    this.#waiting.length = 0
    await Promise.allSettled([...this.#sending])
  }

  #tell(clientId: string): void {
    if (this.#listening(clientId)) {
      this.#counts?.pushClient('listening')
      return
    }
    this.#counts?.pushClient('notified')
    if (this.#intervalMs > 0) this.#told.add(clientId)
    this.#due.add(clientId)
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
      this.#scheduleFlush()
    }, Math.max(1, end - this.#now()))
    this.#laterTimer.unref()
  }

  /** Batches what became due in this turn of the event loop. */
  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#due.size === 0) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      if (this.#closed) return
      const clients = [...this.#due]
      this.#due.clear()
      for (let i = 0; i < clients.length; i += PUSH_BATCH_SIZE) {
        this.#waiting.push({ clients: clients.slice(i, i + PUSH_BATCH_SIZE), id: this.#newId(), attempt: 1 })
      }
      this.#pump()
    })
  }

  #pump(): void {
    while (!this.#closed && this.#inFlight < PUSH_CONCURRENCY && this.#waiting.length > 0) {
      const batch = this.#waiting.shift()!
      this.#inFlight++
      const sending = this.#send(batch).finally(() => {
        this.#inFlight--
        this.#sending.delete(sending)
        this.#pump()
      })
      this.#sending.add(sending)
    }
  }

  async #send(batch: Batch): Promise<void> {
    let outcome: PushOutcome
    try {
      outcome = await this.#channel.send(batch.clients, { id: batch.id, number: batch.attempt }, this.#stop.signal)
    } catch (err) {
      // A channel reports failures as outcomes; anything thrown is a bug, not worth a retry.
      outcome = { ok: false, retry: false, problem: (err as Error).message }
    }
    if (outcome.ok) {
      this.#counts?.pushBatch('delivered')
      return
    }
    const context = { id: batch.id, attempt: batch.attempt, clients: batch.clients.length, problem: outcome.problem }
    if (this.#closed) return
    if (!outcome.retry || batch.attempt >= PUSH_ATTEMPTS) {
      this.#counts?.pushBatch('failed')
      this.#log.error(context, 'Push notification not delivered; the clients read their queues when they next connect')
      return
    }
    this.#counts?.pushBatch('retried')
    const delay = Math.min(outcome.retryAfterMs ?? RETRY_BASE_MS * 2 ** (batch.attempt - 1), PUSH_MAX_RETRY_DELAY_MS)
    this.#log.warn({ ...context, retry_in_ms: delay }, 'Push notification failed; trying again')
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer)
      this.#waiting.unshift({ ...batch, attempt: batch.attempt + 1 })
      this.#pump()
    }, delay)
    timer.unref()
    this.#retryTimers.add(timer)
  }
}
