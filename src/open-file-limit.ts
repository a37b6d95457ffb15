import { readFileSync } from 'node:fs'
import { MAX_REFUSED_WAITING } from './connection-gate.js'

/** Descriptors the process needs besides connections: the listeners, the store, workers, logs. */
export const DESCRIPTOR_HEADROOM = 64

/**
 * The process's soft limit of open files (`ulimit -n`), from Linux's /proc/self/limits; undefined
 * elsewhere or when it cannot be read. Each connection takes one descriptor, and beyond the limit
 * Node can accept none (libuv closes them at once): MAX_CONNECTIONS then never answers.
 */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string
  try {
    text = read()
  } catch {
    return undefined
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text)
  if (!match || match[1] === 'unlimited') return undefined
  return Number(match[1])
}

/**
 * A warning when MAX_CONNECTIONS cannot be reached under the open-file limit; undefined when it
 * can (or is off). Besides the connections admitted, up to MAX_REFUSED_WAITING refused ones wait
 * for their answer, and the store and the listeners take a few.
 */
export function fileLimitWarning(maxConnections: number, limit: number | undefined): string | undefined {
  const needed = maxConnections + MAX_REFUSED_WAITING + DESCRIPTOR_HEADROOM
  if (maxConnections === 0 || limit === undefined || needed <= limit) return undefined
  return `MAX_CONNECTIONS=${maxConnections} needs ulimit -n of at least ${needed} (up to ${MAX_REFUSED_WAITING} more for refused connections waiting for their answer, ~${DESCRIPTOR_HEADROOM} for the store and the listeners), and it is ${limit}: ` +
    'beyond it connections are closed unanswered; raise ulimit -n (LimitNOFILE= in systemd, --ulimit nofile= in Docker) or lower MAX_CONNECTIONS'
}
