import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import type { ValidationMode } from '../config.js'
import { ServiceError } from '../errors.js'
import { gapView } from '../schemas/views.js'
import { deliveryFrame } from './delivery-frames.js'
import { answerStreamFrame } from './stream-requests.js'
import { whenExpired } from '../auth/expiry.js'
import { isFull, waitForRoom, type BackpressureLimits } from '../service/backpressure.js'
import type { DeliveryService } from '../service/delivery-service.js'
import type { DeliverySink } from '../service/subscription.js'

/** Close codes of the stream, documented in the README and the OpenAPI description. */
export const CLOSE_CODES = {
  /** The consumer read nothing for STREAM_STALL_TIMEOUT while behind: resume from your cursor. */
  slowConsumer: 4008,
  /** The peer missed a keep-alive ping. */
  missedPing: 4000,
  /** The store failed; reconnect with your cursor. */
  internalError: 1011,
  /** AUTH=jwt: the stream's token expired; reconnect with a fresh one and your cursor. */
  tokenExpired: 4001,
} as const

/** How long a peer has to answer our close frame before its socket is cut (ws would wait 30 s). */
const CLOSE_GRACE_MS = 1000

/**
 * A stream opened with a token lives no longer than the token: closed with 4001 when it expires.
 * From then on no frame of the peer is acted on (serveStream reads only while OPEN), and a peer
 * that does not answer the close is cut off.
 */
export function closeAtExpiry(socket: WebSocket, expiresAt: number): void {
  let cutOff: NodeJS.Timeout | undefined
  const cancel = whenExpired(expiresAt, () => {
    socket.close(CLOSE_CODES.tokenExpired, 'token expired: reconnect with a new token and your cursor')
    cutOff = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS)
  })
  socket.once('close', () => {
    cancel()
    clearTimeout(cutOff)
  })
}

export interface StreamOptions extends BackpressureLimits {
  readonly pingIntervalMs: number
  /** How a `send` frame treats bytes that are not MLS: as REST does (MLS_VALIDATION). */
  readonly validation: ValidationMode
}

/** Frames a client may have waiting for an answer before its socket is no longer read. */
export const MAX_UNANSWERED_FRAMES = 64

/** A Sec-WebSocket-Key: 16 bytes in base64 (RFC 6455 §4.1). */
const HANDSHAKE_KEY = /^[+/0-9A-Za-z]{22}==$/

/**
 * The handshake headers the WebSocket library would refuse, refused first in the service's error
 * shape (the library answers such a handshake with an HTML page).
 */
export function assertHandshake(headers: IncomingHttpHeaders): void {
  if (headers.upgrade?.toLowerCase() !== 'websocket') throw new ServiceError('bad_request', 'Upgrade must be websocket, alone')
  const key = headers['sec-websocket-key']
  if (key === undefined || !HANDSHAKE_KEY.test(key)) {
    throw new ServiceError('bad_request', 'Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455 §4.1)')
  }
  const version = Number(headers['sec-websocket-version'])
  if (version !== 13 && version !== 8) throw new ServiceError('bad_request', 'Sec-WebSocket-Version must be 13 (RFC 6455; 8 is taken too)')
}

/**
 * Serves one WebSocket: a Subscription writes deliveries as JSON text frames (the delivery at
 * the top level; other frames carry `type`); the client may send `ack` and `send` frames
 * (src/http/stream-requests.ts), each answered by one frame.
 * `raw` is the connection under the WebSocket: a page of frames is corked into one write.
 */
export function serveStream(socket: WebSocket, raw: Socket, service: DeliveryService, clientId: string, after: number, options: StreamOptions, log: FastifyBaseLogger): ServedStream {
  const backlog = { buffered: () => socket.bufferedAmount, open: () => socket.readyState === socket.OPEN }
  // Whether the client may lack deliveries it was written: a pong answers a ping sent after
  // them (TCP keeps the order), so what was written before the last answered ping arrived.
  // Writes while the socket closes are dropped by ws: never arrived.
  let written = 0
  let pinged = 0
  let confirmed = 0
  let lost = false
  const sink: DeliverySink = {
    deliver: (deliveries) => {
      written++
      if (socket.readyState !== socket.OPEN) lost = true
      raw.cork()
      for (const delivery of deliveries) socket.send(deliveryFrame(delivery))
      raw.uncork()
    },
    gap: (gap) => socket.send(JSON.stringify({ type: 'gap', ...gapView(gap) })),
    get full() {
      return isFull(backlog, options)
    },
    drained: async () => {
      const outcome = await waitForRoom(backlog, options)
      // Nothing more is queued for it; ws ends the connection if the close handshake stalls too.
      if (outcome === 'stalled') socket.close(CLOSE_CODES.slowConsumer, 'slow consumer: reconnect with your cursor')
      return outcome === 'room'
    },
    fail: () => socket.close(CLOSE_CODES.internalError, 'internal error: reconnect with your cursor'),
  }
  const subscription = service.subscribe(clientId, after, sink)

  let alive = true
  const ping = setInterval(() => {
    if (!alive) {
      log.debug({ clientId }, 'Stream peer missed a ping; dropping it')
      socket.close(CLOSE_CODES.missedPing, 'missed keep-alive ping')
      socket.terminate()
      return
    }
    alive = false
    pinged = written
    socket.ping()
  }, options.pingIntervalMs)
  socket.on('pong', () => {
    alive = true
    confirmed = pinged
  })
  // Frames are answered one after another, in the order they came, so a client's sends get
  // seqs in the order it sent them. A client that keeps too many unanswered is not read
  // from until the backlog shrinks (TCP pushes back on it).
  let answering: Promise<void> = Promise.resolve()
  let unanswered = 0
  let stopping = false
  socket.on('message', (data, isBinary) => {
    // Closing (token expired, shutting down, slow consumer): what the peer still sends is not ours to act on.
    if (socket.readyState !== socket.OPEN) return
    alive = true
    const text = isBinary ? undefined : data.toString()
    if (++unanswered === MAX_UNANSWERED_FRAMES) socket.pause()
    answering = answering.then(async () => {
      try {
        const answer = stopping ? SHUTTING_DOWN : await answerStreamFrame(text, service, clientId, options.validation, log)
        if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(answer))
      } finally {
        if (unanswered-- === MAX_UNANSWERED_FRAMES) socket.resume()
      }
    })
  })
  // 1006: the connection ended without a close handshake (it broke, or missed a ping): what
  // was written since the last answered ping may never have arrived.
  socket.on('close', (code) => {
    clearInterval(ping)
    subscription.close({ dropped: lost || (code === 1006 && written > confirmed) })
  })
  socket.on('error', (err) => log.debug({ err, clientId }, 'Stream socket error'))
  subscription.start()
  return {
    closed: new Promise((resolve) => socket.once('close', () => resolve())),
    async stop() {
      stopping = true
      subscription.close()
      await answering
    },
  }
}

/** What the route keeps of a served stream, to stop it before the store closes. */
export interface ServedStream {
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>
  /** Stops delivering and answers further frames with an error; resolves once the frames in progress are answered. */
  stop(): Promise<void>
}

const SHUTTING_DOWN = { type: 'error', error: 'unavailable', message: 'the server is shutting down: reconnect (with your cursor) and send again' }
