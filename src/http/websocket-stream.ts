import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { FastifyBaseLogger } from 'fastify'
import { isServiceError } from '../errors.js'
import { gapView } from '../schemas/views.js'
import { deliveryFrame } from './delivery-frames.js'
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
} as const

export interface StreamOptions extends BackpressureLimits {
  readonly pingIntervalMs: number
}

/**
 * Serves one WebSocket: a Subscription writes deliveries as JSON text frames (the delivery at
 * the top level; other frames carry `type`), the client may send `{"type":"ack","up_to":N}`.
 * `raw` is the connection under the WebSocket: a page of frames is corked into one write.
 */
export function serveStream(socket: WebSocket, raw: Socket, service: DeliveryService, clientId: string, after: number, options: StreamOptions, log: FastifyBaseLogger): void {
  const backlog = { buffered: () => socket.bufferedAmount, open: () => socket.readyState === socket.OPEN }
  const sink: DeliverySink = {
    deliver: (deliveries) => {
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
    socket.ping()
  }, options.pingIntervalMs)
  socket.on('pong', () => (alive = true))
  socket.on('message', (data, isBinary) => {
    alive = true
    void handleClientFrame(isBinary ? undefined : data.toString(), service, clientId).then((reply) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(reply))
    })
  })
  socket.on('close', () => {
    clearInterval(ping)
    subscription.close()
  })
  socket.on('error', (err) => log.debug({ err, clientId }, 'Stream socket error'))
  subscription.start()
}

async function handleClientFrame(text: string | undefined, service: DeliveryService, clientId: string): Promise<Record<string, unknown>> {
  let frame: unknown
  try {
    frame = text === undefined ? undefined : JSON.parse(text)
  } catch {
    return { type: 'error', error: 'bad_request', message: 'frames must be JSON text' }
  }
  const request = frame as { type?: unknown; up_to?: unknown } | undefined
  if (request?.type !== 'ack' || typeof request.up_to !== 'number') {
    return { type: 'error', error: 'bad_request', message: 'expected {"type":"ack","up_to":<seq>}' }
  }
  try {
    const result = await service.ack(clientId, request.up_to)
    return { type: 'ack', acked_up_to: result.ackedUpTo, remaining: result.remaining }
  } catch (err) {
    if (isServiceError(err)) return { type: 'error', error: err.code, message: err.message }
    return { type: 'error', error: 'internal', message: 'Internal server error' }
  }
}
