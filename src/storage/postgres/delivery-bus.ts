import { randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Logger } from 'pino'
import { LocalDeliveryBus, type DeliveryBus } from '../../service/delivery-bus.js'

export const CHANNEL = 'mls_ds_deliveries'
/** NOTIFY payloads must stay under 8000 bytes; long recipient lists go out in several. */
const MAX_PAYLOAD = 7000

interface Notification {
  /** The instance that accepted the message: it has woken its own streams already. */
  readonly from: string
  readonly clients: readonly string[]
}

export interface PostgresBusOptions {
  readonly connectionString: string
  readonly log: Pick<Logger, 'warn' | 'info'>
  readonly channel?: string
  /** Longest wait between two attempts to get the LISTEN connection back. */
  readonly maxReconnectDelayMs?: number
}

/**
 * Wakes live streams on every instance sharing the database: LISTEN/NOTIFY on one channel,
 * the payload naming the clients whose queues grew. Like the local bus it carries no data;
 * a woken stream reads the store at its cursor, so a lost notification delays, never loses.
 * The LISTEN connection is dedicated and comes back by itself; when it does, every local
 * stream is woken, since anything may have been missed while it was down.
 */
export class PostgresDeliveryBus implements DeliveryBus {
  readonly #local = new LocalDeliveryBus()
  readonly #instance = randomUUID()
  readonly #options: PostgresBusOptions
  readonly #channel: string
  readonly #notifier: pg.Pool
  #listener: pg.Client | undefined
  #closed = false
  #retryDelay = 100
  #retryTimer: NodeJS.Timeout | undefined

  private constructor(options: PostgresBusOptions) {
    this.#options = options
    this.#channel = options.channel ?? CHANNEL
    this.#notifier = new pg.Pool({ connectionString: options.connectionString, max: 2, connectionTimeoutMillis: 5000 })
    this.#notifier.on('error', () => {})
  }

  static async open(options: PostgresBusOptions): Promise<PostgresDeliveryBus> {
    const bus = new PostgresDeliveryBus(options)
    try {
      await bus.#listen()
    } catch (err) {
      await bus.close()
      throw err
    }
    return bus
  }

  publish(clientIds: readonly string[]): void {
    if (clientIds.length === 0) return
    this.#local.publish(clientIds)
    for (const payload of this.#payloads(clientIds)) {
      this.#notifier.query('SELECT pg_notify($1, $2)', [this.#channel, payload]).catch((err: Error) => {
        this.#options.log.warn({ err }, 'Could not notify other instances; their streams catch up on the next message')
      })
    }
  }

  listening(clientId: string): boolean {
    return this.#local.listening(clientId)
  }

  missed(clientId: string): void {
    this.#local.missed(clientId)
  }

  whenMissed(handler: (clientId: string) => void): void {
    this.#local.whenMissed(handler)
  }

  subscribe(clientId: string, listener: () => void): () => void {
    return this.#local.subscribe(clientId, listener)
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retryTimer)
    const listener = this.#listener
    this.#listener = undefined
    await Promise.allSettled([listener?.end(), this.#notifier.end()])
  }

  *#payloads(clientIds: readonly string[]): Generator<string> {
    let batch: string[] = []
    let size = 0
    for (const id of clientIds) {
      const length = Buffer.byteLength(JSON.stringify(id)) + 1
      if (batch.length > 0 && size + length > MAX_PAYLOAD) {
        yield this.#encode(batch)
        batch = []
        size = 0
      }
      batch.push(id)
      size += length
    }
    if (batch.length > 0) yield this.#encode(batch)
  }

  #encode(clients: string[]): string {
    return JSON.stringify({ from: this.#instance, clients } satisfies Notification)
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.connectionString, connectionTimeoutMillis: 5000, keepAlive: true })
    client.on('error', () => this.#lost(client))
    client.on('end', () => this.#lost(client))
    client.on('notification', (message) => this.#onNotification(message.payload))
    try {
      await client.connect()
      await client.query(`LISTEN ${pg.escapeIdentifier(this.#channel)}`)
    } catch (err) {
      client.end().catch(() => {})
      throw err
    }
    if (this.#closed) {
      await client.end()
      return
    }
    this.#listener = client
    this.#retryDelay = 100
  }

  #onNotification(payload: string | undefined): void {
    let notification: Notification
    try {
      notification = JSON.parse(payload ?? '') as Notification
    } catch {
      return
    }
    if (notification.from === this.#instance || !Array.isArray(notification.clients)) return
    this.#local.publish(notification.clients.filter((c) => typeof c === 'string'))
  }

  #lost(client: pg.Client): void {
    if (this.#closed || this.#listener !== client) return
    this.#listener = undefined
    client.end().catch(() => {})
    this.#options.log.warn('Lost the database notification connection; reconnecting')
    this.#scheduleReconnect()
  }

  #scheduleReconnect(): void {
    if (this.#closed) return
    this.#retryTimer = setTimeout(() => {
      this.#listen().then(
        () => {
          this.#options.log.info('Database notifications are back; waking every live stream')
          this.#local.publishAll()
        },
        () => {
          this.#retryDelay = Math.min(this.#retryDelay * 2, this.#options.maxReconnectDelayMs ?? 5000)
          this.#scheduleReconnect()
        },
      )
    }, this.#retryDelay)
    this.#retryTimer.unref()
  }
}
