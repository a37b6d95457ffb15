/** Jobs the load-generator process runs, and what it reports back. */
import type { RelayVariants } from './variants.js'

export interface HttpJob {
  readonly kind: 'http'
  readonly url: string
  readonly connections: number
  readonly method: 'GET' | 'POST' | 'PUT'
  /** Paths used in turn, one per request (one path: a fixed, prebuilt request). */
  readonly paths: readonly string[]
  /** Bodies used in turn (JSON strings); none for GET. */
  readonly bodies?: readonly string[]
  /** Instead of bodies: a distinct copy of one MLS message per request (POST relay body). */
  readonly relay?: RelayVariants
  /** The copy number of the first request (default 0): concurrent jobs relaying into one group need copies of their own. */
  readonly firstCopy?: number
  /** Sent with every request (e.g. Authorization). */
  readonly headers?: Readonly<Record<string, string>>
  /** Either a duration or an exact number of requests. */
  readonly seconds?: number
  readonly amount?: number
}

export interface TcpJob {
  readonly kind: 'tcp'
  readonly port: number
  readonly connections: number
  /** Requests in flight on each connection (pipelined newline-JSON). */
  readonly inFlight: number
  /** One request line, without its newline (sent again and again)... */
  readonly line?: string
  /** ...or a RelayMessage line with a distinct copy of one MLS message per request. */
  readonly relay?: RelayVariants
  /** An answer counts as a success when it starts with this. */
  readonly okPrefix: string
  readonly seconds?: number
  readonly amount?: number
}

export interface WsJob {
  readonly kind: 'ws'
  readonly url: string
  readonly members: number
  /** Messages the sender keeps outstanding (not yet received by every member). */
  readonly window: number
  readonly payloadBytes: number
  readonly seconds: number
}

/**
 * Fan-out through the service: `members` (already in the group) each on their stream
 * `GET /clients/{member}/stream?after=0`; the sender publishes distinct copies of one MLS
 * message with `POST /groups/{g}/messages`, keeping `window` not yet received by every member.
 */
export interface StreamJob {
  readonly kind: 'stream'
  /** http://host:port of the service */
  readonly url: string
  readonly members: readonly string[]
  readonly window: number
  /** The group, its sender and the message copied (copy i differs in its last 4 bytes). */
  readonly relay: RelayVariants
  /** How the sender publishes: `send` frames on its own stream, or POST /groups/{g}/messages. */
  readonly publish: 'stream' | 'rest'
  readonly seconds: number
}

export type LoadJob = HttpJob | TcpJob | WsJob | StreamJob

export interface LoadResult {
  /** Successful operations (2xx answers, ok TCP answers, or deliveries to members). */
  readonly ok: number
  readonly failed: number
  readonly seconds: number
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  /** The first failure seen, to explain a non-zero `failed`. */
  readonly firstError?: string
}
