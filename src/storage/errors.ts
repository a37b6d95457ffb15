import { ServiceError } from '../errors.js'

/**
 * The store's backend cannot be reached (database down, pool exhausted, statement timed out).
 * It is a ServiceError so that both doors answer 503 `unavailable` without knowing the store;
 * the cause is kept for the log, never sent to clients.
 */
export class StoreUnavailableError extends ServiceError {
  constructor(readonly reason: string, options?: { cause?: unknown }) {
    super('unavailable', 'The database is unavailable; retry later')
    this.name = 'StoreUnavailableError'
    if (options?.cause !== undefined) this.cause = options.cause
  }
}
