import net from 'node:net'
import { once } from 'node:events'
import { DeliveryService } from '../../src/service/delivery-service.js'
import { createBackend } from '../../src/storage/index.js'
import { createTcpServer, type TcpServer, type TcpServerOptions } from '../../src/tcp/server.js'
import { silentLogger, testConfig } from '../helpers/app.js'
import { testStoreConfig } from '../helpers/test-store.js'

export interface Harness {
  readonly tcp: TcpServer
  readonly service: DeliveryService
  readonly port: number
  /** Closes the listener and its connections, then the store and its bus. */
  close(): Promise<void>
}

/**
 * A bare TCP listener on a free port over a fresh store of the TEST_STORE backend (memory by
 * default), chosen as the runtime chooses it.
 */
export async function startServer(overrides: Partial<TcpServerOptions> = {}): Promise<Harness> {
  const backend = await createBackend({ ...testConfig(), ...(await testStoreConfig()) }, silentLogger)
  const maxMessageBytes = overrides.maxMessageBytes ?? 1024 * 1024
  // As the runtime has it: the largest request also bounds the data of one page.
  const service = new DeliveryService({ store: backend.store, bus: backend.bus, log: silentLogger, pageMaxBytes: maxMessageBytes })
  const tcp = createTcpServer({ service, maxMessageBytes, log: silentLogger, ...overrides })
  let port: number
  try {
    port = (await tcp.listen(0, '127.0.0.1')).port
  } catch (err) {
    await backend.close()
    throw err
  }
  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= tcp.close().finally(() => backend.close())
    return closing
  }
  return { tcp, service, port, close }
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
