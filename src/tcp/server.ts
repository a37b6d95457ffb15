import net from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import { MemberAccess, OPEN_ACCESS } from '../auth/access-policy.js'
import type { TokenVerifier } from '../auth/token-verifier.js'
import type { ValidationMode } from '../config.js'
import type { ConnectionGate, Refusal } from '../connection-gate.js'
import type { ServiceErrorResponse } from '../schemas/tcp.js'
import type { DeliveryService } from '../service/delivery-service.js'
import { openSockets } from '../open-sockets.js'
import { TLS_HANDSHAKE_TIMEOUT_MS, type TlsCredentials } from '../tls.js'
import { Connection } from './connection.js'
import { DEFAULT_LIVE_STREAM, type LiveStreamOptions } from './live-stream.js'
import { createProtocol } from './protocol.js'

export interface TcpServerOptions {
  readonly service: DeliveryService
  /** Largest request, in bytes of JSON; a larger one is answered with an Error and the connection closed. */
  readonly maxMessageBytes: number
  readonly log: Logger
  /** Bytes that are not MLS: kept as opaque legacy data (permissive, the default: the original clients send placeholders) or rejected (strict). */
  readonly mlsValidation?: ValidationMode
  /** End a connection with no traffic for this long (TCP_IDLE_TIMEOUT); 0, the default here, never does. */
  readonly idleTimeoutMs?: number
  /** On close(), how long connections get to finish their answers before they are cut. */
  readonly closeGraceMs?: number
  /** Backpressure and keep-alive of subscribed connections (STREAM_MAX_BUFFERED_BYTES, STREAM_STALL_TIMEOUT, STREAM_PING_INTERVAL). */
  readonly stream?: Partial<LiveStreamOptions>
  /** AUTH=jwt: connections must Authenticate with a token this verifies before anything else. */
  readonly verifier?: TokenVerifier
  /** TCP_TLS: the connections speak TLS with this certificate; the protocol inside is the same. */
  readonly tls?: TlsCredentials
  /** A connection that has not finished its TLS handshake by then is dropped (TLS_HANDSHAKE_TIMEOUT_MS by default). */
  readonly tlsHandshakeTimeoutMs?: number
  /** The connection limits of the process (shared with the REST door); none when not given. */
  readonly connections?: ConnectionGate
}

export interface TcpServer {
  /** A tls.Server with TCP_TLS. */
  readonly server: net.Server
  /** Whether connections speak TLS. */
  readonly tls: boolean
  /** TCP_TLS: new connections get this certificate (SIGHUP); open ones keep theirs. */
  setCredentials(credentials: TlsCredentials): void
  listen(port: number, host: string): Promise<{ port: number; host: string }>
  /** Stops accepting, answers the requests already received, then closes every connection. */
  close(): Promise<void>
}

const DEFAULT_CLOSE_GRACE_MS = 1500

/** The legacy TCP-JSON listener (LEGACY-TCP.md): framing per connection, one protocol for all. */
export function createTcpServer(options: TcpServerOptions): TcpServer {
  const { log, maxMessageBytes } = options
  const { service, verifier } = options
  const access = verifier ? new MemberAccess(service) : OPEN_ACCESS
  const protocol = createProtocol({ service, log, validation: options.mlsValidation ?? 'permissive', access, verifier })
  const stream: LiveStreamOptions = { ...DEFAULT_LIVE_STREAM, ...options.stream }
  const connections = new Set<Connection>()
  let closing: Promise<void> | undefined

  const onConnection = (socket: net.Socket) => {
    if (closing) {
      socket.destroy()
      return
    }
    const refusal = options.connections?.refusalOf(socket)
    if (refusal) {
      refuse(socket, refusal)
      return
    }
    log.info(`New client connected from: ${formatAddress(socket)}`)
    const connection = new Connection(socket, {
      protocol,
      maxMessageBytes,
      log,
      idleTimeoutMs: options.idleTimeoutMs ?? 0,
      stream,
      onClose: () => {
        connections.delete(connection)
        log.info('Client disconnected')
      },
    })
    connections.add(connection)
  }
  // allowHalfOpen: a client that half-closes after its request (`echo … | nc`) still gets the answer.
  // Over TLS only once the handshake is done: a client that goes away during it (one that refused
  // the certificate) is closed then, not kept until the handshake timeout.
  const server: net.Server = options.tls
    ? tls.createServer({ allowHalfOpen: false, noDelay: true, cert: options.tls.cert, key: options.tls.key, handshakeTimeout: options.tlsHandshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS }, (socket: tls.TLSSocket) => {
      socket.allowHalfOpen = true
      onConnection(socket)
    })
    : net.createServer({ allowHalfOpen: true, noDelay: true }, onConnection)
  // Every accepted socket, a TLS one still in its handshake included, so close() can cut it.
  const sockets = openSockets(server)
  options.connections?.watch(server, 'tcp')
  // A failed handshake (plain text sent to the TLS port, an old protocol, a client that gave up,
  // one that never finished within the handshake timeout): with a listener here, closing it is ours.
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    log.debug({ err, remote: formatAddress(socket) }, 'TCP: TLS handshake failed')
    socket.destroy()
  })
  // A listening socket error after listen() (rare: e.g. EMFILE on accept) must not crash the process.
  server.on('error', (err) => log.error({ err }, 'TCP listener error'))

  return {
    server,
    tls: options.tls !== undefined,
    setCredentials(credentials) {
      if (!(server instanceof tls.Server)) throw new Error('setCredentials: the TCP door does not speak TLS')
      server.setSecureContext({ cert: credentials.cert, key: credentials.key })
    },
    listen(port, host) {
      return new Promise((resolve, reject) => {
        const onError = (err: Error) => reject(err)
        server.once('error', onError)
        server.listen(port, host, () => {
          server.off('error', onError)
          const address = server.address() as net.AddressInfo
          resolve({ port: address.port, host: address.address })
        })
      })
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        const grace = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS
        // Cut whatever has not finished in time (a client that never reads, or never closes its side).
        const timer = setTimeout(() => {
          for (const connection of connections) connection.destroy()
          for (const socket of sockets) socket.destroy()
        }, grace)
        timer.unref()
        // The callback runs once every connection is gone (or at once, with an error, if never listening).
        server.close(() => {
          clearTimeout(timer)
          resolve()
        })
        for (const connection of connections) connection.shutdown()
      })
      return closing
    },
  }
}

/**
 * A connection the limits turn away (connection-gate.ts) is told why in one Error line, with
 * the code and retry_after of the REST answer, and closed; what it sends is not read. The gate
 * cuts it if it does not go within REFUSED_GRACE_MS.
 */
function refuse(socket: net.Socket, refusal: Refusal): void {
  const line: ServiceErrorResponse = { type: 'Error', message: `Connection refused: ${refusal.message}`, code: refusal.code, retry_after: refusal.retryAfterSeconds }
  socket.on('error', () => socket.destroy())
  socket.resume()
  socket.end(`${JSON.stringify(line)}\n`)
}

/** Like the original's SocketAddr: 127.0.0.1:5000, [::1]:5000. */
function formatAddress(socket: net.Socket): string {
  const { remoteAddress: address, remotePort: port } = socket
  if (address === undefined) return 'unknown'
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`
}
