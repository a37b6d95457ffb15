import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { PushCounts } from '../push/notifier.js'
import { CONTENT_TYPES, type ContentType } from '../storage/store.js'

/** Where a request came in: REST, the legacy TCP listener, or a frame on a WebSocket stream. */
export type Door = 'rest' | 'tcp' | 'stream'

/** The port a connection came in on: REST (its WebSocket streams included) or the legacy TCP listener. */
export type ConnectionDoor = 'rest' | 'tcp'

/** How a KeyPackage claim ended. */
export type ClaimOutcome = 'claimed' | 'last_resort' | 'last_resort_over_limit' | 'none' | 'rate_limited'

/** Opaque legacy bytes (accepted under MLS_VALIDATION=permissive) have no MLS content type. */
const OPAQUE = 'opaque' as const

/**
 * What the service counts, for `GET /metrics` in the Prometheus text format. One instance per
 * service, so both doors count into the same series. The counters on the relay path are
 * children bound to their labels once, so counting a message is one addition.
 */
export class ServiceMetrics implements PushCounts {
  readonly registry = new Registry()
  readonly #accepted: Map<ContentType | typeof OPAQUE, Counter.Internal>
  readonly #duplicates: Counter.Internal
  readonly #deliveries: Counter.Internal
  readonly #keyPackagesStored: Counter.Internal
  readonly #claims: Counter<'outcome'>
  readonly #groups: Counter<'event'>
  readonly #rejected: Counter<'door' | 'error'>
  #streamsOpen = 0
  readonly #connectionsOpen: Record<ConnectionDoor, number> = { rest: 0, tcp: 0 }
  readonly #connectionsRefused: Counter<'door' | 'reason'>
  readonly #pushClients: Counter<'result'>
  readonly #pushBatches: Counter<'outcome'>
  readonly #clientsDeleted: Counter.Internal
  readonly #logDropped: Counter.Internal

  constructor() {
    const registers = [this.registry]
    const accepted = new Counter({
      name: 'mlsds_messages_accepted_total',
      help: 'Messages accepted into a group log (retries answered with the original seq are not counted), by MLS content type',
      labelNames: ['content_type'] as const,
      registers,
    })
    this.#accepted = new Map([...CONTENT_TYPES, OPAQUE].map((type) => [type, accepted.labels(type)]))
    this.#duplicates = new Counter({ name: 'mlsds_messages_retried_total', help: 'Retried publishes answered with the seq of the original (same Idempotency-Key, or same bytes from the same sender)', registers }).labels()
    this.#deliveries = new Counter({ name: 'mlsds_deliveries_queued_total', help: "Deliveries put on clients' queues (a message to a group of n members makes n - 1; a routed Welcome makes one per recipient)", registers }).labels()
    this.#keyPackagesStored = new Counter({ name: 'mlsds_key_packages_stored_total', help: 'KeyPackages accepted into pools', registers }).labels()
    this.#claims = new Counter({ name: 'mlsds_key_package_claims_total', help: 'KeyPackage claims, by outcome: claimed (a one-time KeyPackage, now gone), last_resort (handed out and kept; opaque legacy ones too), last_resort_over_limit (beyond KEY_PACKAGE_CLAIM_LIMIT: the kept one instead of a one-time one), none (the pool was empty), rate_limited (refused: beyond KEY_PACKAGE_CLAIM_LIMIT and nothing kept)', labelNames: ['outcome'] as const, registers })
    this.#groups = new Counter({ name: 'mlsds_groups_total', help: 'Groups created and deleted', labelNames: ['event'] as const, registers })
    this.#rejected = new Counter({ name: 'mlsds_requests_rejected_total', help: 'Requests answered with an error, by door and error code (the codes of the REST error bodies)', labelNames: ['door', 'error'] as const, registers })
    this.#connectionsRefused = new Counter({ name: 'mlsds_connections_refused_total', help: 'Connections turned away, by door and reason: max_connections (MAX_CONNECTIONS), max_connections_per_ip (MAX_CONNECTIONS_PER_IP), connection_rate (CONNECTION_RATE_LIMIT)', labelNames: ['door', 'reason'] as const, registers })
    this.#pushClients = new Counter({ name: 'mlsds_push_clients_total', help: 'Clients to tell while push notifications are on (PUSH_WEBHOOK_URL: their queue grew, or they stopped listening with a delivery missed), by result: notified (queued for a call, now or at the end of their PUSH_MIN_INTERVAL window), listening (not told: a live stream or long poll on this instance), dropped (100,000 clients already waiting)', labelNames: ['result'] as const, registers })
    this.#pushBatches = new Counter({ name: 'mlsds_push_webhook_calls_total', help: 'Calls of the push gateway (PUSH_WEBHOOK_URL), by outcome: delivered (2xx), retried (a timeout, 408, 429 or 5xx, or a 413 to several clients: they wait for the next call), failed (another 4xx, a redirect, a 413 to one client: the clients are dropped)', labelNames: ['outcome'] as const, registers })
    this.#clientsDeleted = new Counter({ name: 'mlsds_clients_deleted_total', help: 'Clients deleted (DELETE /clients/{client}, TCP DeleteClient), also those that had nothing left', registers }).labels()
    this.#logDropped = new Counter({ name: 'mlsds_group_log_messages_dropped_total', help: "Messages dropped from groups' logs for their age (GROUP_LOG_MAX_AGE), by this instance's sweeps", registers }).labels()
    const connections = this.#connectionsOpen
    new Gauge({
      name: 'mlsds_connections_open',
      help: 'Connections open on this instance and admitted, by door (rest: HTTP connections, WebSocket streams included; tcp: the legacy listener)',
      labelNames: ['door'] as const,
      registers,
      collect() {
        this.set({ door: 'rest' }, connections.rest)
        this.set({ door: 'tcp' }, connections.tcp)
      },
    })
    const streams = () => this.#streamsOpen
    new Gauge({
      name: 'mlsds_streams_open',
      help: 'Live delivery streams (WebSocket streams and TCP Subscribe) on this instance',
      registers,
      collect() {
        this.set(streams())
      },
    })
  }

  /** Node's process metrics (CPU, memory, event-loop delay, GC) as well; for the server process, not for tests. */
  collectProcessMetrics(): void {
    collectDefaultMetrics({ register: this.registry })
  }

  messageAccepted(contentType: ContentType | null, recipients: number): void {
    this.#accepted.get(contentType ?? OPAQUE)!.inc()
    if (recipients > 0) this.#deliveries.inc(recipients)
  }

  messageRetried(): void {
    this.#duplicates.inc()
  }

  keyPackagesStored(count: number): void {
    this.#keyPackagesStored.inc(count)
  }

  keyPackageClaim(outcome: ClaimOutcome): void {
    this.#claims.inc({ outcome })
  }

  group(event: 'created' | 'deleted'): void {
    this.#groups.inc({ event })
  }

  rejected(door: Door, error: string): void {
    this.#rejected.inc({ door, error })
  }

  streamOpened(): void {
    this.#streamsOpen++
  }

  streamClosed(): void {
    this.#streamsOpen--
  }

  connectionOpened(door: ConnectionDoor): void {
    this.#connectionsOpen[door]++
  }

  connectionClosed(door: ConnectionDoor): void {
    this.#connectionsOpen[door]--
  }

  connectionRefused(door: ConnectionDoor, reason: string): void {
    this.#connectionsRefused.inc({ door, reason })
  }

  groupLogMessagesDropped(count: number): void {
    this.#logDropped.inc(count)
  }

  clientDeleted(): void {
    this.#clientsDeleted.inc()
  }

  pushClient(result: 'notified' | 'listening' | 'dropped'): void {
    this.#pushClients.inc({ result })
  }

  pushBatch(outcome: 'delivered' | 'retried' | 'failed'): void {
    this.#pushBatches.inc({ outcome })
  }

  /** The exposition: `contentType` and the text. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() }
  }
}
