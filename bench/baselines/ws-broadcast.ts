/** Baseline for fan-out: a bare ws server that sends every message of the sender to all members. */
import { WebSocketServer, type WebSocket } from 'ws'

const members = new Set<WebSocket>()
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })

server.on('connection', (ws, request) => {
  const role = new URL(request.url ?? '/', 'http://x').searchParams.get('role')
  if (role === 'member') {
    members.add(ws)
    ws.on('close', () => members.delete(ws))
    return
  }
  ws.on('message', (data: Buffer) => {
    for (const member of members) member.send(data)
  })
})
server.on('listening', () => {
  const address = server.address()
  process.stdout.write(`READY ${JSON.stringify({ port: typeof address === 'object' && address ? address.port : 0 })}\n`)
})
process.on('SIGTERM', () => process.exit(0))
