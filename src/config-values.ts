import { availableParallelism } from 'node:os'
import type { RateLimit } from './config.js'
import { parseCiphersuiteList, supportedCiphersuites } from './mls/index.js'
import { webhookKey } from './push/webhook.js'

/**
 * The parsers of setting values (config.ts lists the settings and reads them): each takes the
 * raw text and returns the value, or throws an Error whose message says what is expected.
 */

export function parseCiphersuites(raw: string): ReadonlySet<number> {
  if (raw.toLowerCase() === 'all') return new Set(supportedCiphersuites().map((s) => s.id))
  return parseCiphersuiteList(raw)
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 }

export function parseDuration(raw: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(raw)
  if (!match) throw new Error('must be a whole number of seconds, or a number with s, m, h or d (e.g. 90d)')
  const seconds = Number(match[1]) * (DURATION_UNITS[match[2] || 's'] ?? 1)
  if (seconds < 1) throw new Error('must be at least one second')
  return seconds
}

/** A duration, or 0 for "never". */
export function parseDurationOrNever(raw: string): number {
  return raw === '0' ? 0 : parseDuration(raw)
}

/** '' (not set), or a URL of one of `protocols`; `problem` says what is expected. */
export function parseOptionalUrl(raw: string, protocols: readonly string[], problem: string): string {
  if (raw === '') return ''
  let url: URL | undefined
  try {
    url = new URL(raw)
  } catch { /* reported below */ }
  if (!url || !protocols.includes(url.protocol)) throw new Error(problem)
  return raw
}

export function parseDatabaseUrl(raw: string): string {
  return parseOptionalUrl(raw, ['postgres:', 'postgresql:'], 'must be a URL like postgres://user:password@host:5432/database')
}

export function parsePath(raw: string): string {
  if (raw === '' || raw.includes('\0')) throw new Error('must be a file path')
  return raw
}

/** A file path, or '' for none. */
export function parseOptionalPath(raw: string): string {
  return raw === '' ? '' : parsePath(raw)
}

/** `<count>/<window>`, the window in seconds or with s, m, h or d; `0` or `off` for no limit. */
export function parseRateLimit(raw: string): RateLimit | null {
  if (raw === '0' || raw.toLowerCase() === 'off') return null
  const match = /^(\d+)\s*\/\s*(\S+)$/.exec(raw)
  if (!match) throw new Error('must be <count>/<window> such as 20/1m, or 0 for no limit')
  const count = Number(match[1])
  if (count < 1 || count > 1_000_000) throw new Error('the count must be from 1 to 1000000 (or 0 alone for no limit)')
  const windowSeconds = parseDuration(match[2]!)
  if (windowSeconds > 86400) throw new Error('the window must be at most 1d')
  return { count, windowSeconds }
}

export function parseJwtSecret(raw: string): string {
  // RFC 7518 §3.2: an HMAC key at least as long as the hash (32 bytes for HS256).
  if (raw !== '' && Buffer.byteLength(raw) < 32) throw new Error('must be at least 32 characters (RFC 7518 §3.2)')
  return raw
}

export function parseJwksUrl(raw: string): string {
  return parseOptionalUrl(raw, ['https:', 'http:'], 'must be an http(s) URL such as https://id.example.com/.well-known/jwks.json')
}

/** PUSH_WEBHOOK_URL: may be http (a gateway inside the deployment) or https. */
export function parseWebhookUrl(raw: string): string {
  const url = parseOptionalUrl(raw, ['https:', 'http:'], 'must be an http(s) URL such as https://push.example.com/mls-deliveries')
  if (url === '') return url
  // fetch refuses them; the calls are signed instead.
  const { username, password } = new URL(url)
  if (username !== '' || password !== '') throw new Error('must not hold a user name or password (calls are signed with PUSH_WEBHOOK_SECRET)')
  return url
}

/** PUSH_MIN_INTERVAL: 0, or a duration of at most a day. */
export function parsePushInterval(raw: string): number {
  const seconds = parseDurationOrNever(raw)
  if (seconds > 86400) throw new Error('must be at most 1d')
  return seconds
}

/** GROUP_LOG_MAX_AGE: 0, or a duration of at most 100 years (36500d). */
export function parseLogMaxAge(raw: string): number {
  const seconds = parseDurationOrNever(raw)
  if (seconds > 36500 * 86400) throw new Error('must be at most 36500d')
  return seconds
}

/** PUSH_WEBHOOK_SECRET: '' or a Standard Webhooks secret. */
export function parseWebhookSecret(raw: string): string {
  if (raw !== '') webhookKey(raw)
  return raw
}

export function parseWorkers(raw: string): number {
  if (raw.toLowerCase() === 'auto') return Math.max(1, Math.min(4, availableParallelism() - 1))
  return parseInteger(raw, 0, 64)
}

export function parsePort(raw: string): number {
  return parseInteger(raw, 0, 65535)
}

export function parseInteger(raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new Error(`must be a whole number from ${min} to ${max}`)
  const n = Number(raw)
  if (n < min || n > max) throw new Error(`must be a whole number from ${min} to ${max}`)
  return n
}

export function parseBoolean(raw: string): boolean {
  const value = raw.toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(value)) return true
  if (['false', '0', 'no', 'off'].includes(value)) return false
  throw new Error('must be true or false')
}

/** '' → none; '*' → any; otherwise a comma list of origins, each exactly scheme://host[:port]. */
export function parseCorsOrigins(raw: string): readonly string[] {
  const origins = raw.split(',').map((o) => o.trim()).filter(Boolean)
  if (origins.includes('*')) {
    if (origins.length > 1) throw new Error('is * (any origin) or a list of origins, not both')
    return ['*']
  }
  for (const origin of origins) {
    let url: URL | undefined
    try {
      url = new URL(origin)
    } catch { /* reported below */ }
    if (!url || url.origin !== origin || !/^https?:$/.test(url.protocol)) {
      throw new Error(`${JSON.stringify(origin)} is not an origin: write it as the browser sends it, scheme://host[:port] with no path or trailing slash (e.g. https://chat.example.com)`)
    }
  }
  return [...new Set(origins)]
}

export function parseHost(raw: string): string {
  if (raw === '' || /\s/.test(raw)) throw new Error('must be a host name or IP address')
  return raw
}


export function oneOf<T extends string>(raw: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(raw)) return raw as T
  throw new Error(`must be one of ${allowed.join(', ')}`)
}
