import assert from 'node:assert/strict'
import net from 'node:net'
import type { Duplex } from 'node:stream'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Writes raw HTTP/1.1 on a real socket and reads until the server ends the connection (the
 * last request says `Connection: close`, or the server closes it); returns every response in
 * order. `connect` makes the socket (a TLS one, one from another local address); by default a
 * plain connection to 127.0.0.1.
 */
export async function exchange(port: number, ...writes: string[]): Promise<RawResponse[]> {
  return exchangeOn(net.connect(port, '127.0.0.1'), ...writes)
}

export async function exchangeOn(socket: Duplex, ...writes: string[]): Promise<RawResponse[]> {
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const ended = new Promise<void>((resolve, reject) => {
    socket.on('end', resolve)
    socket.on('error', reject)
    setTimeout(() => reject(new Error(`no end of the connection; read so far: ${Buffer.concat(chunks).toString().slice(0, 500)}`)), 5000).unref()
  })
  for (const w of writes) socket.write(w)
  await ended
  socket.destroy()
  return parseResponses(Buffer.concat(chunks).toString('latin1'))
}

export function parseResponses(text: string): RawResponse[] {
  const responses: RawResponse[] = []
  let rest = text
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n')
    assert.ok(headEnd > 0, `a response head in ${JSON.stringify(rest.slice(0, 200))}`)
    const [statusLine, ...lines] = rest.slice(0, headEnd).split('\r\n')
    const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
    const length = Number(headers['content-length'] ?? 0)
    responses.push({ status: Number(statusLine!.split(' ')[1]), headers, body: rest.slice(headEnd + 4, headEnd + 4 + length) })
    rest = rest.slice(headEnd + 4 + length)
  }
  return responses
}

/** One HTTP/1.1 request as text, with Host and (for a body) Content-Length. */
export const rawRequest = (method: string, path: string, headers: Record<string, string> = {}, body = '') =>
  `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries({ ...headers, ...(body ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) }).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`

/** The headers of a WebSocket handshake (RFC 6455 §4.1). */
export const WEBSOCKET_HANDSHAKE = { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' }
