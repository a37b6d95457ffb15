import type { Logger } from 'pino'
import { StoreUnavailableError } from '../storage/errors.js'
import type { Store } from '../storage/store.js'

export interface LogRetentionOptions {
  readonly store: Pick<Store, 'purgeGroupLogs'>
  /** GROUP_LOG_MAX_AGE in milliseconds (more than 0). */
  readonly maxAgeMs: number
  readonly log: Pick<Logger, 'debug' | 'warn' | 'error'>
  /** Counts the messages dropped (mlsds_group_log_messages_dropped_total). */
  readonly counts: { groupLogMessagesDropped(count: number): void }
  /** Injected for tests; unix milliseconds. */
  readonly now?: () => number
  /** Time between sweeps; by default a tenth of the age, from 1 s to 1 min. */
  readonly intervalMs?: number
}

/**
 * GROUP_LOG_MAX_AGE: a sweep every interval drops, from every group's log, the messages older
 * than the age (Store.purgeGroupLogs, batch after batch until none is left), so a message is
 * kept at most the age plus one interval. Every instance sweeps (on PostgreSQL they share the
 * work: a batch one took, the next finds gone). A store that cannot be reached is logged and
 * tried again at the next sweep.
 */
export class LogRetention {
  readonly #options: LogRetentionOptions
  readonly #intervalMs: number
  #timer: NodeJS.Timeout | undefined
  #sweeping: Promise<number> | undefined
  #stopped = false

  constructor(options: LogRetentionOptions) {
    this.#options = options
    this.#intervalMs = options.intervalMs ?? Math.min(60_000, Math.max(1000, Math.floor(options.maxAgeMs / 10)))
  }

  start(): void {
    if (this.#timer || this.#stopped) return
    this.#timer = setInterval(() => void this.sweep(), this.#intervalMs)
    this.#timer.unref()
    void this.sweep()
  }

  /** One sweep (or the one in progress): resolves with the messages it dropped. Never rejects. */
  sweep(): Promise<number> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined
    })
    return this.#sweeping
  }

  /** No sweep after this; resolves once the one in progress is done (before the store closes). */
  async stop(): Promise<void> {
    this.#stopped = true
    clearInterval(this.#timer)
    await this.#sweeping
  }

  async #sweep(): Promise<number> {
    const { store, maxAgeMs, log, counts } = this.#options
    // Never before 1970: an age longer than the clock's reading drops nothing.
    const before = Math.max(0, (this.#options.now ?? Date.now)() - maxAgeMs)
    let total = 0
    try {
      while (!this.#stopped) {
        const dropped = await store.purgeGroupLogs(before)
        if (dropped === 0) break
        total += dropped
        counts.groupLogMessagesDropped(dropped)
        // Between batches, the requests waiting for this process go first.
        await new Promise((resolve) => setImmediate(resolve))
      }
    } catch (err) {
      if (err instanceof StoreUnavailableError) log.warn({ err }, 'Group logs not swept (GROUP_LOG_MAX_AGE): the store did not answer (unreachable, or a batch outlasted DATABASE_STATEMENT_TIMEOUT); trying again at the next sweep')
      else log.error({ err }, 'Group logs not swept (GROUP_LOG_MAX_AGE)')
    }
    if (total > 0) log.debug({ dropped: total, before: new Date(before).toISOString() }, 'Dropped old messages from group logs')
    return total
  }
}
