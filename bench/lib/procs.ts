import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { once } from 'node:events'
import path from 'node:path'

export const ROOT = path.resolve(import.meta.dirname, '../..')
export const HOST = '127.0.0.1'

/** A free port on 127.0.0.1, found by binding port 0 and letting it go. */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  server.listen(0, HOST)
  await once(server, 'listening')
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface Proc {
  readonly child: ChildProcess
  readonly pid: number
  /** Resident set size of the process, from /proc/<pid>/status (bytes). */
  rss(): number
  stop(): Promise<void>
}

function wrap(child: ChildProcess): Proc {
  const exited = once(child, 'exit')
  return {
    child,
    pid: child.pid!,
    rss: () => readRss(child.pid!),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    },
  }
}

/**
 * A number read from one file of each of the process's threads (/proc/<pid>/task/<tid>/<file>),
 * summed. Threads that ended before the call are not counted, so read it around a window the
 * threads outlive.
 */
function sumOverThreads(pid: number, file: string, read: (text: string) => number): number {
  let sum = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += read(readFileSync(`/proc/${pid}/task/${tid}/${file}`, 'utf8'))
    } catch { /* the thread ended meanwhile */ }
  }
  return sum
}

/**
 * CPU time the process has used so far, all its threads (main, GC helpers, libuv pool), in µs:
 * the first field of schedstat (ns on the CPU).
 */
export function cpuMicros(pid: number): number {
  return sumOverThreads(pid, 'schedstat', (text) => Number(text.split(' ')[0])) / 1000
}

/**
 * How often the process has gone to sleep so far, all its threads: voluntary context switches,
 * from status. A load generator that sleeps is waiting for the server, and each answer then has
 * to wake it on the other CPU (see relay-rest-cost).
 */
export function sleeps(pid: number): number {
  return sumOverThreads(pid, 'status', (text) => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(text)?.[1] ?? 0))
}

/** The load generator's CPU time and sleeps over a window, per request answered: start before it, call the result after. */
export function generatorWindow(pid: number): (requests: number) => { genCpuUs: number; genSleeps: number } {
  const [cpu, slept] = [cpuMicros(pid), sleeps(pid)]
  return (requests) => ({ genCpuUs: (cpuMicros(pid) - cpu) / requests, genSleeps: (sleeps(pid) - slept) / requests })
}

export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)
  if (!kb) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(kb[1]) * 1024
}

export interface ServiceProc extends Proc {
  readonly httpUrl: string
  readonly tcpPort: number
}

export interface ServiceOptions {
  readonly profileDir?: string
  readonly nodeArgs?: readonly string[]
  /** Extra environment, e.g. STORE=postgres and DATABASE_URL; the store is memory unless set here. */
  readonly env?: Readonly<Record<string, string>>
}

/** No AUTH_* of the caller's shell reaches a service unless a scenario sets it (empty is unset). */
const NO_AUTH = { AUTH: 'none', AUTH_JWT_SECRET: '', AUTH_JWKS_URL: '', AUTH_JWT_ISSUER: '', AUTH_JWT_AUDIENCE: '' }

/** Starts the built service (dist/server.js) as its own process, logging at warn, on free ports. */
export async function startService(options: ServiceOptions = {}): Promise<ServiceProc> {
  const [httpPort, tcpPort] = [await freePort(), await freePort()]
  const args = [...(options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`] : []), ...(options.nodeArgs ?? [])]
  const child = spawn(process.execPath, [...args, 'dist/server.js'], {
    cwd: ROOT,
    // STORE is set either way, so a STORE in the caller's shell cannot move a memory scenario. The
    // claim scenarios claim one client's KeyPackages thousands of times a second: they measure
    // the pool, so KEY_PACKAGE_CLAIM_LIMIT (20 a minute by default) is off.
    env: { ...process.env, STORE: 'memory', KEY_PACKAGE_CLAIM_LIMIT: '0', ...NO_AUTH, ...options.env, HOST, HTTP_PORT: String(httpPort), TCP_PORT: String(tcpPort), LOG_LEVEL: 'warn', LOG_FORMAT: 'json' },
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  const proc = wrap(child)
  const httpUrl = `http://${HOST}:${httpPort}`
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode} while starting`)
    try {
      const res = await fetch(`${httpUrl}/health`)
      if (res.ok) break
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await proc.stop()
      throw new Error('the service did not answer /health within 20 s')
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { ...proc, httpUrl, tcpPort }
}

/**
 * Starts a baseline (bench/baselines/<name>.ts) in its own process. It prints one line
 * `READY <json>` once listening; that JSON (e.g. its port) is returned.
 */
export async function startBaseline<T = { port: number }>(name: string, args: readonly string[] = []): Promise<Proc & { info: T }> {
  const child = spawn(process.execPath, ['--import', 'tsx', `bench/baselines/${name}.ts`, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const proc = wrap(child)
  const info = await new Promise<T>((resolve, reject) => {
    let buffered = ''
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8')
      const line = buffered.split('\n').find((l) => l.startsWith('READY '))
      if (line) {
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        resolve(JSON.parse(line.slice(6)) as T)
      }
    }
    child.stdout!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`baseline ${name} exited with ${code} before it was ready`)))
  })
  return { ...proc, info }
}

/** Runs a command to completion; rejects with its output when it fails. */
export async function run(command: string, args: readonly string[]): Promise<void> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} failed (${code}):\n${output}`)
}

/** Runs a bench script to completion and returns the JSON of its `RESULT <json>` line. */
export async function runForResult<T>(script: string, args: readonly string[]): Promise<T> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  const [code] = (await once(child, 'exit')) as [number | null]
  const line = output.split('\n').find((l) => l.startsWith('RESULT '))
  if (code !== 0 || !line) throw new Error(`${script} failed (${code}): ${output.slice(0, 500)}`)
  return JSON.parse(line.slice(7)) as T
}
