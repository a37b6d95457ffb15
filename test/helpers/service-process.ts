import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

/** The real server process (through tsx), as a deployment runs it; HTTP and TCP on free ports. */
export class ServiceProcess {
  readonly child: ChildProcess
  #output = ''

  private constructor(child: ChildProcess) {
    this.child = child
    child.stdout!.on('data', (d: Buffer) => (this.#output += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (this.#output += d.toString()))
  }

  static async start(env: Record<string, string>): Promise<{ proc: ServiceProcess; httpPort: number }> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { PATH: process.env.PATH ?? '', HTTP_PORT: '0', TCP_PORT: '0', LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const proc = new ServiceProcess(child)
    const deadline = Date.now() + 30_000
    for (;;) {
      const match = /running on [^:]+:(\d+) \(HTTP/.exec(proc.#output)
      if (match) return { proc, httpPort: Number(match[1]) }
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`the service did not start: ${proc.#output.slice(-2000)}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  get output(): string {
    return this.#output
  }

  /** SIGTERM and wait; SIGKILL when it does not go. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = once(this.child, 'exit')
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }

  async kill9(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = once(this.child, 'exit')
    this.child.kill('SIGKILL')
    await exited
  }
}
