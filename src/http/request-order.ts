import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'

type RequestListener = (request: IncomingMessage, response: ServerResponse) => void

const LAST_RESPONSE = Symbol('the last response of a request waiting on this connection')

/** A connection's socket as Node's HTTP server uses it. */
type Connection = Duplex & {
  /** Node's own: the response the socket is assigned to (being answered), if any. */
  _httpMessage?: ServerResponse | null
  [LAST_RESPONSE]?: ServerResponse
}

/**
 * Node runs the handlers of pipelined requests as soon as it parses them (only their answers
 * leave in order), so `POST /groups` then `DELETE /groups/g` sent back to back on one connection
 * could delete before the create, and the create then succeeds after a 204. RFC 9112 §9.3.2 lets
 * a server work on pipelined requests at once only when all of them are safe. Here a request
 * waits until every earlier request on its connection is answered; a connection without
 * pipelining (nearly all) pays three property reads per request. Requests after one whose answer
 * closes the connection are not carried out at all.
 */
export function serveInOrder(server: Server): void {
  const listeners = server.listeners('request') as RequestListener[]
  if (listeners.length === 0) throw new Error('serveInOrder: the server has no request listener yet')
  server.removeAllListeners('request')
  const serve = (request: IncomingMessage, response: ServerResponse) => {
    for (const listener of listeners) listener.call(server, request, response)
  }
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket as Connection
    const earlier = lastResponse(socket, response)
    if (!earlier) {
      if (!socket.writableEnded) serve(request, response)
      return
    }
    socket[LAST_RESPONSE] = response
    earlier.once('close', () => {
      if (socket[LAST_RESPONSE] === response) socket[LAST_RESPONSE] = undefined
      if (!endsConnection(earlier, socket)) serve(request, response)
    })
  })
}

/**
 * Whether nothing more is served on the connection after this response: it said `Connection:
 * close` (the client asked for it, or the service ends the connection after an error), or the
 * socket is gone. RFC 9112 §9.6: the server MUST NOT process any further requests received on it;
 * Node still emits them (and would run their handlers with answers nobody can read), so they are
 * dropped here, and go with the socket.
 */
function endsConnection(response: ServerResponse, socket: Connection): boolean {
  return (response as ServerResponse & { _last?: boolean })._last === true || socket.destroyed || socket.writableEnded
}

/**
 * Calls `next` once every request received on the connection so far is answered: at once when
 * none is pending. For a request taken off HTTP ('upgrade') behind pipelined ones.
 */
export function whenAnswered(socket: Duplex, next: () => void): void {
  const earlier = pendingResponse(socket)
  // 'close' comes after Node has handed the socket on from that response.
  if (earlier) earlier.once('close', () => setImmediate(next))
  else next()
}

/** The response of the latest request received on the connection that is not answered yet. */
export function pendingResponse(socket: Duplex): ServerResponse | undefined {
  return lastResponse(socket as Connection, undefined)
}

/** The response of the latest earlier request on the connection that is not answered yet. */
function lastResponse(socket: Connection, current: ServerResponse | undefined): ServerResponse | undefined {
  const waiting = socket[LAST_RESPONSE]
  if (waiting) return waiting
  const active = socket._httpMessage
  return active && active !== current ? active : undefined
}
