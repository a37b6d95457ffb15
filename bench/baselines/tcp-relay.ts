/**
 * Baseline for the legacy TCP door: a bare node:net newline-JSON server that parses each
 * request, turns its byte array into bytes (as the service must), appends it to an in-memory
 * array and answers one line. `{"type":"Reset"}` empties the array (between rounds).
 */
import net from 'node:net'

const ANSWER = '{"type":"MessageResponse","success":true,"message":"Message relayed successfully"}\n'
let messages: unknown[] = []

const server = net.createServer((socket) => {
  socket.setNoDelay(true)
  let partial = ''
  socket.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n')
    partial = lines.pop()!
    let out = ''
    for (const line of lines) {
      if (line.trim() === '') continue
      try {
        const request = JSON.parse(line) as { type?: string; group_id?: string; sender_id?: string; message?: number[] }
        if (request.type === 'Reset') messages = []
        else messages.push({ group: request.group_id, sender: request.sender_id, data: Uint8Array.from(request.message ?? []) })
        out += ANSWER
      } catch (err) {
        out += `${JSON.stringify({ type: 'Error', message: `Invalid message format: ${(err as Error).message}` })}\n`
      }
    }
    if (out) socket.write(out)
  })
  socket.on('error', () => socket.destroy())
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${JSON.stringify({ port: (server.address() as net.AddressInfo).port })}\n`)
})
process.on('SIGTERM', () => process.exit(0))
