import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { whenAnswered } from './request-order.js'

type UpgradeListener = (request: IncomingMessage, socket: Duplex, head: Buffer) => void

/**
 * Node hands every request that carries `Connection: upgrade` to the server's 'upgrade'
 * listeners, taken off HTTP, as soon as there is one listener; @fastify/websocket's listener then
 * runs any such request through Fastify on a socket that nothing ends (`Upgrade: h2c`, which
 * `curl --http2` sends, or `Upgrade: foo` on `GET /health`), loses its body, and upgrades pull
 * routes beside the stream only to close them.
 *
 * So only a WebSocket handshake (`GET`, `Upgrade: websocket`) to a stream path goes to the
 * WebSocket plugin. Any other request is given back to the HTTP server without its upgrade
 * (RFC 9110 §7.8: a server may ignore Upgrade): its head is written out again in front of the
 * bytes read after it, and the socket starts over as a connection of its own, so the request is
 * answered like any other, body, keep-alive, timeouts and later pipelined requests included.
 * Either way it waits for the answers to earlier requests on its connection. A handshake on a
 * connection the connection limits refused (`isRefused`) goes the HTTP way too, to its 503 or 429
 * (connection-refusal.ts).
 */
export function gateUpgrades(server: Server, isStreamPath: (url: string) => boolean, isRefused: (socket: Duplex) => boolean = () => false): void {
  const websocket = server.listeners('upgrade') as UpgradeListener[]
  if (websocket.length === 0) throw new Error('gateUpgrades: register the WebSocket plugin first')
  server.removeAllListeners('upgrade')
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // A handshake without Host (RFC 6455 §4.1 requires it) goes the HTTP way, to its 400 (host-header.ts).
    const toStream = request.method === 'GET' && isWebSocketHandshake(request) && isStreamPath(request.url ?? '') && (request.headers.host !== undefined || request.httpVersion !== '1.1') && !isRefused(socket)
    whenAnswered(socket, () => {
      if (toStream) for (const listener of websocket) listener.call(server, request, socket, head)
      else answerAsHttp(server, request, socket, head)
    })
  })
}

/** Whether the request asks for a WebSocket (the Upgrade header's protocols include it). */
function isWebSocketHandshake(request: IncomingMessage): boolean {
  return tokens(request.headers.upgrade).includes('websocket')
}

/** The request again, without Upgrade (and what only an upgrade needs), for the HTTP parser. */
function answerAsHttp(server: Server, request: IncomingMessage, socket: Duplex, head: Buffer): void {
  const lines = [`${request.method} ${request.url} HTTP/${request.httpVersion}`]
  const raw = request.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    const lower = name.toLowerCase()
    if (lower === 'upgrade' || lower === 'http2-settings') continue
    if (lower === 'connection') {
      const kept = tokens(raw[i + 1]).filter((t) => t !== 'upgrade' && t !== 'http2-settings')
      if (kept.length > 0) lines.push(`${name}: ${kept.join(', ')}`)
      continue
    }
    lines.push(`${name}: ${raw[i + 1]}`)
  }
  // Header values reached us as latin1 strings: written back as latin1, they are the same bytes.
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]))
  // Over HTTPS the socket is already a TLS one: 'connection' would start a second handshake on it.
  server.emit(server instanceof tls.Server ? 'secureConnection' : 'connection', socket)
}

function tokens(value: string | undefined): string[] {
  return (value ?? '').split(',').map((t) => t.trim().toLowerCase()).filter(Boolean)
}
