import net from 'node:net'
import { once } from 'node:events'
import { pino } from 'pino'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { MemoryStore } from '../../src/storage/memory-store.js'
import { createTcpServer, type TcpServer, type TcpServerOptions } from '../../src/tcp/server.js'

export const silent = pino({ level: 'silent' })

export interface Harness {
  readonly tcp: TcpServer
  readonly service: DeliveryService
  readonly port: number
  close(): Promise<void>
}

/** A TCP listener on a free port over a fresh MemoryStore-backed service. */
export async function startServer(overrides: Partial<TcpServerOptions> = {}): Promise<Harness> {
  const service = new DeliveryService({ store: new MemoryStore(), log: silent })
  const tcp = createTcpServer({ service, maxMessageBytes: 1024 * 1024, log: silent, ...overrides })
  const { port } = await tcp.listen(0, '127.0.0.1')
  return { tcp, service, port, close: () => tcp.close() }
}

export async function connect(port: number, options: { allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: options.allowHalfOpen ?? false })
  await once(socket, 'connect')
  return socket
}

/**
 * Reads newline-terminated JSON answers from a socket. Every answer must be one line, so
 * this also checks the framing of what the server writes.
 */
export class LineReader {
  readonly #lines: string[] = []
  readonly #waiters: Array<() => void> = []
  #buffer = ''
  #ended = false

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => {
      this.#buffer += text
      let newline: number
      while ((newline = this.#buffer.indexOf('\n')) >= 0) {
        this.#lines.push(this.#buffer.slice(0, newline))
        this.#buffer = this.#buffer.slice(newline + 1)
      }
      this.#notify()
    })
    socket.on('end', () => {
      this.#ended = true
      this.#notify()
    })
    socket.on('close', () => {
      this.#ended = true
      this.#notify()
    })
  }

  /** The next answer, parsed; fails when the server closes first or nothing comes in time. */
  async next(timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs
    while (this.#lines.length === 0) {
      if (this.#ended) throw new Error(`connection ended before an answer (partial: ${JSON.stringify(this.#buffer.slice(0, 200))})`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no answer in time')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return JSON.parse(this.#lines.shift() as string)
  }

  /** Resolves when the server has ended the connection; returns the unread answers. */
  async ended(timeoutMs = 5000): Promise<any[]> {
    const deadline = Date.now() + timeoutMs
    while (!this.#ended) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('server did not end the connection')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return this.#lines.splice(0).map((line) => JSON.parse(line))
  }

  get rest(): string {
    return this.#buffer
  }

  #notify(): void {
    for (const wake of this.#waiters.splice(0)) wake()
  }
}

/** Connects, sends one request and reads one answer, on a connection of its own. */
export async function request(port: number, body: unknown): Promise<any> {
  const socket = await connect(port)
  try {
    const reader = new LineReader(socket)
    socket.write(`${typeof body === 'string' ? body : JSON.stringify(body)}\n`)
    return await reader.next()
  } finally {
    socket.destroy()
  }
}

/**
 * What the original clients do (LEGACY-TCP.md): connect, send one request and "\n", ONE
 * read of at most 1024 bytes, strip whitespace, parse, close.
 */
export async function legacyRequest(port: number, body: unknown): Promise<any> {
  const socket = await connect(port)
  try {
    socket.write(`${JSON.stringify(body)}\n`)
    const [chunk] = (await once(socket, 'data')) as [Buffer]
    return JSON.parse(chunk.subarray(0, 1024).toString('utf8').trim())
  } finally {
    socket.destroy()
  }
}

export const ascii = (text: string) => [...Buffer.from(text, 'ascii')]
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
