import net from 'node:net'

/** Sends one newline-JSON request and resolves its one-line answer. */
export function tcpRequest(port: number, request: unknown): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.end(`${JSON.stringify(request)}\n`))
    let answer = ''
    socket.on('data', (c: Buffer) => { answer += c.toString() })
    socket.on('end', () => resolve(answer.trim()))
    socket.on('error', reject)
  })
}
