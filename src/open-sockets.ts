import type { Server, Socket } from 'node:net'

/**
 * Every socket the server accepts, for as long as it is open: one still in its TLS handshake or
 * that never sent a request included, which a server's close() waits for. A stop cuts what is
 * left of them after its grace. Call before the server listens, so none is missed.
 */
export function openSockets(server: Server): ReadonlySet<Socket> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  return sockets
}
