import { once } from 'node:events'
import WebSocket from 'ws'

export interface StreamFrame {
  readonly type?: string
  readonly seq?: number
  readonly [key: string]: unknown
}

/** A real WebSocket consumer of GET /clients/{client}/stream, collecting every frame it gets. */
export class StreamClient {
  readonly frames: StreamFrame[] = []
  closeCode: number | undefined
  readonly #ws: WebSocket
  #waiters: Array<() => void> = []

  private constructor(ws: WebSocket) {
    this.#ws = ws
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()) as StreamFrame)
      this.#notify()
    })
    ws.on('close', (code) => {
      this.closeCode = code
      this.#notify()
    })
    ws.on('error', () => {})
  }

  static async connect(port: number, clientId: string, after = 0): Promise<StreamClient> {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/clients/${encodeURIComponent(clientId)}/stream?after=${after}`)
    const client = new StreamClient(ws)
    await once(ws, 'open')
    return client
  }

  get socket(): WebSocket {
    return this.#ws
  }

  /** Deliveries only (frames without a `type`). */
  get deliveries(): StreamFrame[] {
    return this.frames.filter((f) => f.type === undefined)
  }

  get lastSeq(): number {
    return this.deliveries.at(-1)?.seq ?? 0
  }

  send(frame: unknown): void {
    this.#ws.send(JSON.stringify(frame))
  }

  /** Sends a frame with an `id` and waits for the `sent` or `error` frame that answers it. */
  async ask(frame: { readonly id: string | number; readonly [key: string]: unknown }): Promise<StreamFrame> {
    this.send(frame)
    const answer = () => this.frames.find((f) => (f.type === 'sent' || f.type === 'error') && f.id === frame.id)
    await this.waitFor(() => answer() !== undefined, `the answer to ${String(frame.id)}`)
    return answer()!
  }

  async waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (have ${this.deliveries.length} deliveries, close ${this.closeCode})`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 200)
      })
    }
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.CLOSED) return
    const closed = once(this.#ws, 'close')
    this.#ws.close()
    await closed
  }

  #notify(): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const resolve of waiters) resolve()
  }
}

/** Every delivery seq is 1, 2, 3, … with nothing missing and nothing twice. */
export function assertGapFree(seqs: readonly number[], from = 1): string | undefined {
  for (const [i, seq] of seqs.entries()) {
    if (seq !== from + i) return `expected seq ${from + i} at position ${i}, got ${seq}`
  }
  return undefined
}
