import type net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import type { RateLimit } from './config.js'
import type { ConnectionDoor, ServiceMetrics } from './service/metrics.js'

/** MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP and CONNECTION_RATE_LIMIT; 0 and null: no limit. */
export interface ConnectionLimits {
  /** Connections open at once on this instance, both doors together (streams included). */
  readonly maxConnections: number
  /** Connections open at once from one IP address (IPv6: one /64), both doors together. */
  readonly maxConnectionsPerIp: number
  /** New connections from one IP address (IPv6: one /64) per window, refused ones included. */
  readonly connectionRateLimit: RateLimit | null
}

export type RefusalReason = 'max_connections' | 'max_connections_per_ip' | 'connection_rate'

/** Why a connection is turned away, as its door tells the client (REST: the error body; TCP: an Error line). */
export interface Refusal {
  readonly reason: RefusalReason
  /** 503 unavailable when the instance is full; 429 rate_limited when one address holds or opens too many. */
  readonly code: 'unavailable' | 'rate_limited'
  readonly message: string
  readonly retryAfterSeconds: number
}

/** How long a refused connection gets to read its answer (and, over HTTP, to send the request it answers). */
export const REFUSED_GRACE_MS = 5000
/** Refused connections waiting for their answer; beyond this many, a new one is closed at once, unanswered. */
export const MAX_REFUSED_WAITING = 1024
/** When a limit of open connections turns a client away, it is told to come back after this long. */
const FULL_RETRY_AFTER_SECONDS = 5
/** Addresses whose CONNECTION_RATE_LIMIT window is kept at once; beyond it the oldest window is forgotten. */
export const MAX_RATE_WINDOWS = 100_000
/** At most one log line per reason this often; the lines between are counted. */
const WARN_EVERY_MS = 60_000

const REFUSAL = Symbol('why this connection is refused')
const COUNTED = Symbol('counted by the connection gate')
type Marked = net.Socket & { [REFUSAL]?: Refusal; [COUNTED]?: true }

export interface ConnectionGateOptions {
  readonly limits: ConnectionLimits
  readonly metrics?: Pick<ServiceMetrics, 'connectionOpened' | 'connectionClosed' | 'connectionRefused'>
  readonly log?: Pick<Logger, 'warn'>
  /** Milliseconds since the epoch; the tests move it. */
  readonly now?: () => number
  /** REFUSED_GRACE_MS and MAX_REFUSED_WAITING by default. */
  readonly refusedGraceMs?: number
  readonly maxRefusedWaiting?: number
  /** MAX_RATE_WINDOWS by default. */
  readonly maxRateWindows?: number
}

/**
 * Admits the connections of both doors against one set of limits (the original's "connection
 * rate limiting"), counting every socket from its accept to its close: one still in its TLS
 * handshake, or that has sent nothing, holds a file descriptor and memory too. A refused
 * connection is not simply closed: each door answers it in its own protocol (the REST door the
 * first request with a 503 or 429, after the TLS handshake on HTTPS; the TCP door an `Error`
 * line) and closes it, so a client learns why and when to come back. Counted in this process:
 * every instance has connections of its own.
 */
export class ConnectionGate {
  readonly #limits: ConnectionLimits
  readonly #metrics: ConnectionGateOptions['metrics']
  readonly #log: ConnectionGateOptions['log']
  readonly #now: () => number
  readonly #refusedGraceMs: number
  readonly #maxRefusedWaiting: number
  readonly #maxRateWindows: number
  #open = 0
  readonly #openByAddress = new Map<string, number>()
  /** CONNECTION_RATE_LIMIT: a fixed window per address, opened by its first connection. */
  readonly #windows = new Map<string, { start: number; count: number }>()
  #nextSweep = 0
  #refusedWaiting = 0
  /**
   * Refused sockets of TLS servers, by their ends, until the TLS socket over them is known. A new
   * connection with the same ends (a client that reset one and reconnected from the same port)
   * takes the entry over: only the newest socket with those ends can finish a handshake.
   */
  readonly #refusedByEnds = new Map<string, { socket: net.Socket; refusal: Refusal }>()
  readonly #warned = new Map<RefusalReason, { at: number; since: number }>()

  constructor(options: ConnectionGateOptions) {
    this.#limits = options.limits
    this.#metrics = options.metrics
    this.#log = options.log
    this.#now = options.now ?? Date.now
    this.#refusedGraceMs = options.refusedGraceMs ?? REFUSED_GRACE_MS
    this.#maxRefusedWaiting = options.maxRefusedWaiting ?? MAX_REFUSED_WAITING
    this.#maxRateWindows = options.maxRateWindows ?? MAX_RATE_WINDOWS
  }

  /** Connections open now and admitted (refused ones are not counted). */
  get open(): number {
    return this.#open
  }

  /**
   * Admits or refuses every socket the server accepts, before any other listener sees it. Call
   * before the server listens. A socket handed to the server again (upgrade-gate.ts) is not
   * counted twice.
   */
  watch(server: net.Server, door: ConnectionDoor): void {
    const overTls = server instanceof tls.Server
    server.prependListener('connection', (socket: Marked) => {
      if (socket[COUNTED]) return
      socket[COUNTED] = true
      const refusal = this.#admit(socket, door)
      if (overTls && (refusal || this.#refusedByEnds.size > 0)) this.#holdForTls(socket, refusal)
    })
    if (overTls) {
      // The doors see the TLS socket, not the one accepted: the refusal moves over to it.
      server.prependListener('secureConnection', (secure: Marked) => {
        if (this.#refusedByEnds.size === 0 || secure[REFUSAL]) return
        const key = ends(secure)
        const held = this.#refusedByEnds.get(key)
        if (held === undefined) return
        this.#refusedByEnds.delete(key)
        secure[REFUSAL] = held.refusal
      })
    }
  }

  /** Why the connection of this socket (accepted, or the TLS socket over it) is refused; undefined when admitted. */
  refusalOf(socket: object): Refusal | undefined {
    return (socket as Marked)[REFUSAL]
  }

  #admit(socket: Marked, door: ConnectionDoor): Refusal | undefined {
    const address = addressKey(socket.remoteAddress)
    const refusal = this.#check(address)
    if (refusal) {
      this.#refuse(socket, door, refusal)
      return refusal
    }
    this.#open++
    // Open connections by address are kept only for MAX_CONNECTIONS_PER_IP.
    const counted = this.#limits.maxConnectionsPerIp > 0 ? address : undefined
    if (counted !== undefined) this.#openByAddress.set(counted, (this.#openByAddress.get(counted) ?? 0) + 1)
    this.#metrics?.connectionOpened(door)
    socket.once('close', () => {
      this.#open--
      if (counted !== undefined) {
        const left = this.#openByAddress.get(counted)! - 1
        if (left === 0) this.#openByAddress.delete(counted)
        else this.#openByAddress.set(counted, left)
      }
      this.#metrics?.connectionClosed(door)
    })
    return undefined
  }

  /** The first limit the new connection would break, in the order: its address's rate, its address's share, the instance's. */
  #check(address: string | undefined): Refusal | undefined {
    const { maxConnections, maxConnectionsPerIp, connectionRateLimit: rate } = this.#limits
    if (address !== undefined && rate) {
      const now = this.#now()
      const windowMs = rate.windowSeconds * 1000
      this.#sweep(now, windowMs)
      let window = this.#windows.get(address)
      if (window === undefined || now - window.start >= windowMs) {
        window = { start: now, count: 0 }
        // Deleted first, so the map stays in the order the windows started.
        this.#windows.delete(address)
        if (this.#windows.size >= this.#maxRateWindows) this.#forgetOldestWindow(now, windowMs)
        this.#windows.set(address, window)
      }
      window.count++
      if (window.count > rate.count) {
        const retryAfterSeconds = Math.max(1, Math.ceil((window.start + windowMs - now) / 1000))
        return {
          reason: 'connection_rate',
          code: 'rate_limited',
          message: `${address} opened ${rate.count} connections within ${rate.windowSeconds} s (CONNECTION_RATE_LIMIT); retry in ${retryAfterSeconds} s`,
          retryAfterSeconds,
        }
      }
    }
    if (address !== undefined && maxConnectionsPerIp > 0 && (this.#openByAddress.get(address) ?? 0) >= maxConnectionsPerIp) {
      return {
        reason: 'max_connections_per_ip',
        code: 'rate_limited',
        message: `${address} has ${maxConnectionsPerIp} connections open (MAX_CONNECTIONS_PER_IP); close one, or retry in ${FULL_RETRY_AFTER_SECONDS} s`,
        retryAfterSeconds: FULL_RETRY_AFTER_SECONDS,
      }
    }
    if (maxConnections > 0 && this.#open >= maxConnections) {
      return {
        reason: 'max_connections',
        code: 'unavailable',
        message: `this instance has ${maxConnections} connections open (MAX_CONNECTIONS); retry in ${FULL_RETRY_AFTER_SECONDS} s`,
        retryAfterSeconds: FULL_RETRY_AFTER_SECONDS,
      }
    }
    return undefined
  }

  /**
   * Marks the socket for its door to answer and close, and closes it after REFUSED_GRACE_MS
   * whatever happened; while MAX_REFUSED_WAITING are waiting, closes it at once.
   */
  #refuse(socket: Marked, door: ConnectionDoor, refusal: Refusal): void {
    this.#metrics?.connectionRefused(door, refusal.reason)
    this.#warn(refusal)
    if (this.#refusedWaiting >= this.#maxRefusedWaiting) {
      socket.destroy()
      return
    }
    socket[REFUSAL] = refusal
    this.#refusedWaiting++
    const timer = setTimeout(() => socket.destroy(), this.#refusedGraceMs)
    timer.unref()
    socket.once('close', () => {
      this.#refusedWaiting--
      clearTimeout(timer)
    })
  }

  /** Keeps a refusal for the TLS socket to come; an admitted socket clears what an older one with its ends left. */
  #holdForTls(socket: Marked, refusal: Refusal | undefined): void {
    if (socket.destroyed) return
    const key = ends(socket)
    if (refusal === undefined) {
      this.#refusedByEnds.delete(key)
      return
    }
    this.#refusedByEnds.set(key, { socket, refusal })
    socket.once('close', () => {
      if (this.#refusedByEnds.get(key)?.socket === socket) this.#refusedByEnds.delete(key)
    })
  }

  /**
   * Many addresses (a holder of many IPv6 /64s) would fill the map within one window: the
   * windows that ended go first, then the oldest one, whose address may then open its count again.
   */
  #forgetOldestWindow(now: number, windowMs: number): void {
    this.#nextSweep = 0
    this.#sweep(now, windowMs)
    if (this.#windows.size < this.#maxRateWindows) return
    const oldest = this.#windows.keys().next().value
    if (oldest !== undefined) this.#windows.delete(oldest)
  }

  /** Drops the windows that have ended, once per window length (so the map holds only live windows). */
  #sweep(now: number, windowMs: number): void {
    if (now < this.#nextSweep) return
    this.#nextSweep = now + windowMs
    // In the order the windows started: the first that is still open ends the sweep.
    for (const [address, window] of this.#windows) {
      if (now - window.start < windowMs) break
      this.#windows.delete(address)
    }
  }

  /** A refusal is worth a line in the log, but a flood of them is not worth a flood of lines. */
  #warn(refusal: Refusal): void {
    if (!this.#log) return
    const now = this.#now()
    const last = this.#warned.get(refusal.reason)
    if (last && now - last.at < WARN_EVERY_MS) {
      last.since++
      return
    }
    const more = last && last.since > 0 ? ` (and ${last.since} more refused for this reason since the last such line)` : ''
    this.#log.warn({ reason: refusal.reason }, `Connection refused: ${refusal.message}${more}`)
    this.#warned.set(refusal.reason, { at: now, since: 0 })
  }
}

/** A connection's two ends, which no other open connection shares. */
function ends(socket: net.Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}|${socket.localAddress}|${socket.localPort}`
}

/**
 * What the per-address limits count by: an IPv4 address (an IPv4-mapped IPv6 one included) as
 * it is, an IPv6 address by its /64, the smallest block a host is given (RFC 6177), so that one
 * host cannot step around a limit by changing its last 64 bits. Undefined when the socket no
 * longer knows its peer (it closed at once).
 */
export function addressKey(address: string | undefined): string | undefined {
  if (!address) return undefined
  if (!address.includes(':')) return address
  const zoneless = address.split('%')[0]!.toLowerCase()
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(zoneless)
  if (mapped) return mapped[1]
  const [head = '', tail] = zoneless.split('::')
  const groups = head === '' ? [] : head.split(':')
  if (tail !== undefined) {
    // A dotted quad at the end stands for two groups.
    const tailGroups = tail === '' ? [] : tail.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]))
    while (groups.length + tailGroups.length < 8) groups.push('0')
    groups.push(...tailGroups)
  }
  const prefix = groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16))
  return `${prefix.join(':')}::/64`
}
