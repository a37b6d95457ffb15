import type net from 'node:net'
import type { Answer } from './tcp-api.js'
import { connect } from './helpers.js'

/**
 * A real TCP consumer of the live stream: connects, sends Subscribe, and collects every line
 * the server writes (answers and Delivery/Gap frames alike), parsed, in arrival order.
 */
export class TcpSubscriber {
  readonly frames: Answer[] = []
  ended = false
  readonly #socket: net.Socket
  #buffer = ''
  #waiters: Array<() => void> = []

  private constructor(socket: net.Socket) {
    this.#socket = socket
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => {
      this.#buffer += text
      let newline: number
      while ((newline = this.#buffer.indexOf('\n')) >= 0) {
        this.frames.push(JSON.parse(this.#buffer.slice(0, newline)) as Answer)
        this.#buffer = this.#buffer.slice(newline + 1)
      }
      this.#notify()
    })
    const end = () => {
      this.ended = true
      this.#notify()
    }
    socket.on('end', end)
    socket.on('close', end)
    socket.on('error', () => {})
  }

  /** Connects and sends Subscribe; does not wait for the answer. */
  static async connect(port: number, clientId: string, after?: number, options: { allowHalfOpen?: boolean } = {}): Promise<TcpSubscriber> {
    const subscriber = new TcpSubscriber(await connect(port, options))
    subscriber.send({ type: 'Subscribe', client_id: clientId, ...(after === undefined ? {} : { after }) })
    return subscriber
  }

  /** Connects, subscribes, and waits for the Subscribed answer. */
  static async open(port: number, clientId: string, after?: number): Promise<TcpSubscriber> {
    const subscriber = await TcpSubscriber.connect(port, clientId, after)
    await subscriber.waitFor(() => subscriber.frames.length > 0, 'the Subscribed answer')
    const first = subscriber.frames[0]
    if (first?.type !== 'Subscribed') throw new Error(`expected Subscribed first, got ${JSON.stringify(first)}`)
    return subscriber
  }

  get socket(): net.Socket {
    return this.#socket
  }

  get deliveries(): Answer[] {
    return this.frames.filter((f) => f.type === 'Delivery')
  }

  /** Everything but Delivery frames: answers, Gap, Error. */
  get others(): Answer[] {
    return this.frames.filter((f) => f.type !== 'Delivery')
  }

  get lastSeq(): number {
    return this.deliveries.at(-1)?.seq ?? 0
  }

  send(request: unknown): void {
    this.#socket.write(`${typeof request === 'string' ? request : JSON.stringify(request)}\n`)
  }

  async waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (have ${this.deliveries.length} deliveries, ended ${this.ended}, others ${JSON.stringify(this.others).slice(0, 300)})`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
  }

  close(): void {
    this.#socket.destroy()
  }

  #notify(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const resolve of waiters) resolve()
  }
}

export const text = (message: readonly number[]): string => Buffer.from(message).toString()
