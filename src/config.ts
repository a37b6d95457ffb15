import { parseArgs } from 'node:util'
import { oneOf, parseBoolean, parseCiphersuites, parseCorsOrigins, parseDatabaseUrl, parseDuration, parseDurationOrNever, parseHost, parseInteger, parseJwksUrl, parseJwtSecret, parseLogMaxAge, parseOptionalPath, parsePath, parsePort, parsePushInterval, parseRateLimit, parseWebhookSecret, parseWebhookUrl, parseWorkers } from './config-values.js'

/**
 * The one place that reads process.env and the command line. Every setting has an
 * environment variable and a matching `--flag`; the flag wins. All values are validated
 * once at start and every bad value is reported in its own line.
 */

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]
export const STORES = ['memory', 'postgres', 'sqlite'] as const
export type StoreKind = (typeof STORES)[number]
export const VALIDATION_MODES = ['strict', 'permissive'] as const
/** What happens to bytes that do not decode as MLS at all: rejected, or kept as opaque legacy data. */
export type ValidationMode = (typeof VALIDATION_MODES)[number]

export const TCP_TLS_MODES = ['auto', 'true', 'false'] as const
/** Whether the TCP door speaks TLS: auto follows TLS_CERT_FILE; false keeps it plain for the original clients. */
export type TcpTlsMode = (typeof TCP_TLS_MODES)[number]

export const AUTH_MODES = ['none', 'jwt'] as const
export type AuthMode = (typeof AUTH_MODES)[number]

/** `<count>/<window>`: at most `count` events per window of `windowSeconds`. */
export interface RateLimit {
  readonly count: number
  readonly windowSeconds: number
}

export interface Config {
  readonly host: string
  readonly httpPort: number
  /** A REST request must be received in full within this; 0 never. */
  readonly httpRequestTimeoutSeconds: number
  /** Web origins allowed to call the REST API from a browser (CORS); ['*'] for any, [] for none. */
  readonly corsOrigins: readonly string[]
  readonly tcpPort: number
  readonly tcpEnabled: boolean
  /** A TCP connection without traffic this long is ended; 0 never. */
  readonly tcpIdleTimeoutSeconds: number
  /** PEM certificate chain and private key: with both, the REST door is HTTPS (and the TCP door TLS, see tcpTls); '' for none. */
  readonly tlsCertFile: string
  readonly tlsKeyFile: string
  readonly tcpTls: TcpTlsMode
  /** Connections open at once on this instance, both doors together; 0 no limit. */
  readonly maxConnections: number
  /** Connections open at once from one IP address (IPv6: one /64); 0 no limit. */
  readonly maxConnectionsPerIp: number
  /** New connections from one IP address per window; null no limit. */
  readonly connectionRateLimit: RateLimit | null
  readonly logLevel: LogLevel
  readonly logFormat: 'json' | 'pretty'
  /** Serve GET /metrics (Prometheus) and collect the process metrics. */
  readonly metrics: boolean
  readonly maxMessageBytes: number
  readonly store: StoreKind
  /** PostgreSQL connection string; required with STORE=postgres, '' otherwise. */
  readonly databaseUrl: string
  readonly databasePoolSize: number
  /** PostgreSQL statement_timeout; a query gets this + 5 s before its connection is given up. */
  readonly databaseStatementTimeoutSeconds: number
  readonly sqlitePath: string
  readonly shutdownTimeoutMs: number
  readonly mlsValidation: ValidationMode
  readonly tcpMlsValidation: ValidationMode
  readonly mlsCiphersuites: ReadonlySet<number>
  readonly keyPackageMaxLifetimeSeconds: number
  /** Most claims of one client's KeyPackages per window (across the instances on one database); null: no limit. */
  readonly keyPackageClaimLimit: RateLimit | null
  /** Most messages one sender may relay per window (across the instances on one database); null: no limit. */
  readonly messageRateLimit: RateLimit | null
  readonly mlsWorkers: number
  readonly queueMaxMessages: number
  readonly queueMaxAgeSeconds: number
  readonly idempotencyWindowSeconds: number
  /** Oldest message a group's log keeps, in seconds; 0: kept until the group is deleted. */
  readonly groupLogMaxAgeSeconds: number
  readonly streamPingIntervalSeconds: number
  readonly streamMaxBufferedBytes: number
  readonly streamStallTimeoutSeconds: number
  /** jwt: every API route needs a bearer token whose `sub` is the client it acts as. */
  readonly auth: AuthMode
  /** HMAC secret of the tokens (AUTH=jwt), or ''. */
  readonly authJwtSecret: string
  /** The token issuer's JWKS URL (AUTH=jwt), or ''. */
  readonly authJwksUrl: string
  /** A token's `iss` must be this when not ''. */
  readonly authJwtIssuer: string
  /** A token's `aud` must be or include this when not ''. */
  readonly authJwtAudience: string
  /** The app's push gateway, told which offline clients have new deliveries; '' for none. */
  readonly pushWebhookUrl: string
  /** Its Standard Webhooks secret (`whsec_…`), or ''. */
  readonly pushWebhookSecret: string
  /** A client is told at most once per window this long; 0 for every time. */
  readonly pushMinIntervalSeconds: number
  /** Whether clients may join groups by external commits (RFC 9420 §12.4.3.2). */
  readonly mlsExternalCommits: boolean
}

interface Option<K extends keyof Config> {
  readonly key: K
  readonly env: string
  readonly flag: string
  readonly default: string
  readonly help: string
  readonly parse: (raw: string) => Config[K]
  /** Never echoed in error messages (a connection string carries a password). */
  readonly secret?: boolean
}

const option = <K extends keyof Config>(o: Option<K>): Option<K> => o

/**
 * The highest MAX_MESSAGE_BYTES: a TCP answer spells a page of that much message data as byte
 * values, up to 4 characters per byte, and the JSON of one answer must fit in a JavaScript string
 * (buffer.constants.MAX_STRING_LENGTH, ~512 Mi characters); above ~128 MiB a ReadMessages answer
 * could not be written at all, and a REST body or answer of a few hundred MiB cannot be either.
 */
export const MAX_MESSAGE_BYTES_LIMIT = 64 * 1024 * 1024

export const OPTIONS = [
  option({ key: 'host', env: 'HOST', flag: 'host', default: '127.0.0.1', help: 'Address both listeners bind to (0.0.0.0 for all interfaces)', parse: parseHost }),
  option({ key: 'httpPort', env: 'HTTP_PORT', flag: 'http-port', default: '3000', help: 'REST API port (0 = a free port)', parse: parsePort }),
  option({ key: 'httpRequestTimeoutSeconds', env: 'HTTP_REQUEST_TIMEOUT', flag: 'http-request-timeout', default: '60s', help: 'A REST request (headers and body) must arrive in full within this, or it is answered 408 and its connection closed: seconds, or a number with s, m, h or d; 0 never', parse: parseDurationOrNever }),
  option({ key: 'corsOrigins', env: 'CORS_ORIGINS', flag: 'cors-origins', default: '', help: 'Web origins whose pages may call the REST API (CORS) and open streams: a comma list such as https://chat.example.com, or * for any; empty for none', parse: parseCorsOrigins }),
  option({ key: 'tcpPort', env: 'TCP_PORT', flag: 'tcp-port', default: '8080', help: 'Legacy TCP-JSON port (0 = a free port)', parse: parsePort }),
  option({ key: 'tcpEnabled', env: 'TCP_ENABLED', flag: 'tcp-enabled', default: 'true', help: 'Start the legacy TCP-JSON listener (true/false)', parse: parseBoolean }),
  option({ key: 'tcpIdleTimeoutSeconds', env: 'TCP_IDLE_TIMEOUT', flag: 'tcp-idle-timeout', default: '5m', help: 'Close a TCP connection that sent and was sent nothing this long (a Subscribe stream never idles out): seconds, or a number with s, m, h or d; 0 never', parse: parseDurationOrNever }),
  option({ key: 'tlsCertFile', env: 'TLS_CERT_FILE', flag: 'tls-cert-file', default: '', help: 'PEM certificate (chain) file: with TLS_KEY_FILE, the REST API is served over HTTPS (streams over wss://) and the TCP door over TLS (see TCP_TLS); both files are read again on SIGHUP', parse: parseOptionalPath }),
  option({ key: 'tlsKeyFile', env: 'TLS_KEY_FILE', flag: 'tls-key-file', default: '', help: "PEM private key file of TLS_CERT_FILE's certificate", parse: parseOptionalPath }),
  option({ key: 'tcpTls', env: 'TCP_TLS', flag: 'tcp-tls', default: 'auto', help: 'Whether the TCP door speaks TLS: auto (when TLS_CERT_FILE is set), true, or false (plain, for the original clients, while the REST API is HTTPS)', parse: parseTcpTls }),
  option({ key: 'maxConnections', env: 'MAX_CONNECTIONS', flag: 'max-connections', default: '10000', help: 'Most connections open at once on this instance, both doors together (keep-alive HTTP connections, WebSocket streams, TCP connections, TLS handshakes); beyond it a REST request is answered 503 unavailable and a TCP connection an Error line, then closed; 0 for no limit. Each connection takes a file descriptor: ulimit -n must be at least this + 1088', parse: (raw) => parseInteger(raw, 0, 10_000_000) }),
  option({ key: 'maxConnectionsPerIp', env: 'MAX_CONNECTIONS_PER_IP', flag: 'max-connections-per-ip', default: '0', help: 'Most connections open at once from one IP address (IPv6: one /64), both doors together; beyond it 429 rate_limited (TCP: an Error line), then closed; 0 for no limit (behind a proxy every client has its address)', parse: (raw) => parseInteger(raw, 0, 10_000_000) }),
  option({ key: 'connectionRateLimit', env: 'CONNECTION_RATE_LIMIT', flag: 'connection-rate-limit', default: '0', help: 'Most new connections from one IP address (IPv6: one /64) per window, both doors together: <connections>/<window> (e.g. 100/1m), or 0 for no limit; beyond it 429 rate_limited with retry_after (TCP: an Error line), then closed', parse: parseRateLimit }),
  option({ key: 'logLevel', env: 'LOG_LEVEL', flag: 'log-level', default: 'info', help: `Log level: ${LOG_LEVELS.join('|')}; when unset, RUST_LOG (error|warn|info|debug|trace) is honoured`, parse: parseLogLevel }),
  option({ key: 'logFormat', env: 'LOG_FORMAT', flag: 'log-format', default: 'json', help: 'Log output: json (one JSON object a line) or pretty (readable)', parse: (raw) => oneOf(raw, ['json', 'pretty'] as const) }),
  option({ key: 'metrics', env: 'METRICS', flag: 'metrics', default: 'true', help: 'Serve GET /metrics (Prometheus text format) on the REST port (true/false)', parse: parseBoolean }),
  option({ key: 'maxMessageBytes', env: 'MAX_MESSAGE_BYTES', flag: 'max-message-bytes', default: String(1024 * 1024), help: 'Largest HTTP body and largest TCP request, in bytes (at most 64 MiB); also the most message data one page of a read holds', parse: (raw) => parseInteger(raw, 64, MAX_MESSAGE_BYTES_LIMIT) }),
  option({ key: 'store', env: 'STORE', flag: 'store', default: 'memory', help: `Storage backend: ${STORES.join('|')}`, parse: (raw) => oneOf(raw, STORES) }),
  option({ key: 'databaseUrl', env: 'DATABASE_URL', flag: 'database-url', default: '', help: 'PostgreSQL connection string (postgres://user:password@host:5432/db); required with STORE=postgres', parse: parseDatabaseUrl, secret: true }),
  option({ key: 'databasePoolSize', env: 'DATABASE_POOL_SIZE', flag: 'database-pool-size', default: '10', help: 'Most PostgreSQL connections per instance (one more is kept for notifications)', parse: (raw) => parseInteger(raw, 1, 1000) }),
  option({ key: 'databaseStatementTimeoutSeconds', env: 'DATABASE_STATEMENT_TIMEOUT', flag: 'database-statement-timeout', default: '15s', help: 'Longest PostgreSQL statement before it is cancelled and the request answered 503; a server that does not answer at all is given this + 5 s: seconds, or a number with s, m, h or d', parse: parseDuration }),
  option({ key: 'sqlitePath', env: 'SQLITE_PATH', flag: 'sqlite-path', default: 'mls-ds.sqlite', help: 'SQLite database file for STORE=sqlite (created if missing)', parse: parsePath }),
  option({ key: 'shutdownTimeoutMs', env: 'SHUTDOWN_TIMEOUT_MS', flag: 'shutdown-timeout-ms', default: '5000', help: 'On SIGINT/SIGTERM, how long to let requests in flight finish', parse: (raw) => parseInteger(raw, 0, 600_000) }),
  option({ key: 'mlsValidation', env: 'MLS_VALIDATION', flag: 'mls-validation', default: 'strict', help: 'REST: bytes that are not MLS at all are rejected (strict) or kept as opaque legacy data (permissive)', parse: (raw) => oneOf(raw, VALIDATION_MODES) }),
  option({ key: 'tcpMlsValidation', env: 'TCP_MLS_VALIDATION', flag: 'tcp-mls-validation', default: 'permissive', help: 'The same for the legacy TCP listener, whose original clients send placeholder bytes', parse: (raw) => oneOf(raw, VALIDATION_MODES) }),
  option({ key: 'mlsCiphersuites', env: 'MLS_CIPHERSUITES', flag: 'mls-ciphersuites', default: 'all', help: 'Ciphersuites accepted in KeyPackages: all, or a comma list of ids or names (e.g. 1,3,83)', parse: parseCiphersuites }),
  option({ key: 'mlsExternalCommits', env: 'MLS_EXTERNAL_COMMITS', flag: 'mls-external-commits', default: 'true', help: 'Clients may join a group by an external commit from its GroupInfo (RFC 9420 §12.4.3.2), signed over the epoch\'s GroupContext, and become members (true/false; with false a member may still resync by one)', parse: parseBoolean }),
  option({ key: 'keyPackageMaxLifetimeSeconds', env: 'KEY_PACKAGE_MAX_LIFETIME', flag: 'key-package-max-lifetime', default: '90d', help: 'Longest KeyPackage lifetime accepted: seconds, or a number with s, m, h or d', parse: parseDuration }),
  option({ key: 'keyPackageClaimLimit', env: 'KEY_PACKAGE_CLAIM_LIMIT', flag: 'key-package-claim-limit', default: '20/1m', help: "Most claims of one client's KeyPackages per window, across all instances on one database: <claims>/<window> (e.g. 20/1m, 100/1h), or 0 for no limit; beyond it only the last-resort KeyPackage is handed out, or 429 rate_limited with retry_after without one", parse: parseRateLimit }),
  option({ key: 'messageRateLimit', env: 'MESSAGE_RATE_LIMIT', flag: 'message-rate-limit', default: '0', help: 'Most messages one sender may relay per window (group messages and commits, both doors and streams), across all instances on one database: <messages>/<window> (e.g. 600/1m), or 0 for no limit; beyond it 429 rate_limited with retry_after', parse: parseRateLimit }),
  option({ key: 'mlsWorkers', env: 'MLS_WORKERS', flag: 'mls-workers', default: 'auto', help: 'Worker threads that verify uploaded KeyPackages: auto (CPU cores - 1, at least 1, at most 4), or 0 to verify on the main thread', parse: parseWorkers }),
  option({ key: 'queueMaxMessages', env: 'QUEUE_MAX_MESSAGES', flag: 'queue-max-messages', default: '10000', help: 'Most undelivered deliveries (and Welcomes in the inbox) kept per client; older ones are dropped and the client is told of the gap', parse: (raw) => parseInteger(raw, 1, 100_000_000) }),
  option({ key: 'queueMaxAgeSeconds', env: 'QUEUE_MAX_AGE', flag: 'queue-max-age', default: '7d', help: 'Oldest delivery (and inbox Welcome) kept per client: seconds, or a number with s, m, h or d', parse: parseDuration }),
  option({ key: 'idempotencyWindowSeconds', env: 'IDEMPOTENCY_WINDOW', flag: 'idempotency-window', default: '10m', help: 'How long a retried publish (same Idempotency-Key, or same bytes from the same sender) returns the original seq', parse: parseDuration }),
  option({ key: 'groupLogMaxAgeSeconds', env: 'GROUP_LOG_MAX_AGE', flag: 'group-log-max-age', default: '0', help: "Oldest message a group's log keeps (GET /groups/{g}/messages): older ones are dropped and a read after them is told of the gap; seconds, or a number with s, m, h or d, at least QUEUE_MAX_AGE and IDEMPOTENCY_WINDOW, at most 36500d; 0 keeps every message until the group is deleted", parse: parseLogMaxAge }),
  option({ key: 'streamPingIntervalSeconds', env: 'STREAM_PING_INTERVAL', flag: 'stream-ping-interval', default: '30s', help: 'Keep-alive ping period of live streams; a peer that misses a ping is dropped', parse: parseDuration }),
  option({ key: 'streamMaxBufferedBytes', env: 'STREAM_MAX_BUFFERED_BYTES', flag: 'stream-max-buffered-bytes', default: String(1024 * 1024), help: 'Bytes a live stream may have unsent before it waits for the consumer', parse: (raw) => parseInteger(raw, 1024, 1024 * 1024 * 1024) }),
  option({ key: 'streamStallTimeoutSeconds', env: 'STREAM_STALL_TIMEOUT', flag: 'stream-stall-timeout', default: '10s', help: 'A consumer that reads nothing for this long while behind is disconnected (close code 4008) and resumes from its cursor', parse: parseDuration }),
  option({ key: 'auth', env: 'AUTH', flag: 'auth', default: 'none', help: "Client authentication of both doors: none, or jwt (every API route needs Authorization: Bearer <JWT> whose sub is the client id it acts as, and a TCP connection must send Authenticate with one first; needs AUTH_JWT_SECRET or AUTH_JWKS_URL)", parse: (raw) => oneOf(raw, AUTH_MODES) }),
  option({ key: 'authJwtSecret', env: 'AUTH_JWT_SECRET', flag: 'auth-jwt-secret', default: '', help: 'AUTH=jwt: the shared secret of HS256/HS384/HS512 tokens, at least 32 characters', parse: parseJwtSecret, secret: true }),
  option({ key: 'authJwksUrl', env: 'AUTH_JWKS_URL', flag: 'auth-jwks-url', default: '', help: "AUTH=jwt: the token issuer's public keys (JWKS) for RS*, PS*, ES* and EdDSA tokens, e.g. https://id.example.com/.well-known/jwks.json", parse: parseJwksUrl, secret: true }),
  option({ key: 'authJwtIssuer', env: 'AUTH_JWT_ISSUER', flag: 'auth-jwt-issuer', default: '', help: "AUTH=jwt: when set, a token's iss must be this", parse: (raw) => raw }),
  option({ key: 'authJwtAudience', env: 'AUTH_JWT_AUDIENCE', flag: 'auth-jwt-audience', default: '', help: "AUTH=jwt: when set, a token's aud must be or include this", parse: (raw) => raw }),
  option({ key: 'pushWebhookUrl', env: 'PUSH_WEBHOOK_URL', flag: 'push-webhook-url', default: '', help: "Push notifications: the app's push gateway, POSTed {\"type\":\"deliveries\",\"clients\":[…]} (signed, Standard Webhooks) when clients without a live stream on this instance get deliveries; empty for none", parse: parseWebhookUrl, secret: true }),
  option({ key: 'pushWebhookSecret', env: 'PUSH_WEBHOOK_SECRET', flag: 'push-webhook-secret', default: '', help: 'The signing secret of PUSH_WEBHOOK_URL: whsec_ and the base64 of 24 to 64 random bytes (whsec_$(openssl rand -base64 32))', parse: parseWebhookSecret, secret: true }),
  option({ key: 'pushMinIntervalSeconds', env: 'PUSH_MIN_INTERVAL', flag: 'push-min-interval', default: '10s', help: 'A client is notified at most once per window this long (later deliveries of the window: once at its end): seconds, or a number with s, m, h or d, at most 1d; 0 for every time', parse: parsePushInterval }),
] as const

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export type Env = Readonly<Record<string, string | undefined>>

/** Returns the config, or `{ help: true }` when --help was asked for; throws ConfigError. */
export function loadConfig(env: Env = process.env, argv: readonly string[] = process.argv.slice(2)): Config | { help: true } {
  let flags: Record<string, string | boolean | undefined>
  try {
    const options = Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string' as const }]))
    flags = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true }).values
  } catch (err) {
    throw new ConfigError([(err as Error).message])
  }
  if (flags.help) return { help: true }

  const problems: string[] = []
  const values: Record<string, unknown> = {}
  for (const o of OPTIONS) {
    const fromFlag = flags[o.flag]
    let raw: string
    let source: string
    if (typeof fromFlag === 'string') {
      raw = fromFlag
      source = `--${o.flag}`
    } else if (env[o.env] !== undefined && env[o.env] !== '') {
      raw = env[o.env] as string
      source = o.env
    } else if (o.key === 'logLevel' && env.RUST_LOG) {
      raw = env.RUST_LOG
      source = 'RUST_LOG'
    } else {
      raw = o.default
      source = `default of ${o.env}`
    }
    try {
      values[o.key] = o.parse(raw.trim())
    } catch (err) {
      const shown = 'secret' in o && o.secret ? '(hidden)' : JSON.stringify(raw)
      problems.push(`${source}=${shown}: ${(err as Error).message}`)
    }
  }
  if (problems.length === 0 && values.store === 'postgres' && values.databaseUrl === '') {
    problems.push('DATABASE_URL is required with STORE=postgres (e.g. postgres://mls:secret@127.0.0.1:5432/mls)')
  }
  if (problems.length === 0) {
    const { groupLogMaxAgeSeconds: logAge, idempotencyWindowSeconds: window, queueMaxAgeSeconds: queueAge } = values as unknown as Config
    if (logAge > 0 && logAge < window) {
      problems.push(`GROUP_LOG_MAX_AGE (${logAge} s) must be 0 or at least IDEMPOTENCY_WINDOW (${window} s): a retry within the window must find the message it repeats`)
    }
    if (logAge > 0 && logAge < queueAge) {
      problems.push(`GROUP_LOG_MAX_AGE (${logAge} s) must be 0 or at least QUEUE_MAX_AGE (${queueAge} s): a message leaves the log only once no queue may still hold it`)
    }
  }
  if (problems.length === 0) problems.push(...authProblems(values as unknown as Config), ...tlsProblems(values as unknown as Config), ...pushProblems(values as unknown as Config))
  if (problems.length > 0) throw new ConfigError(problems)
  return values as unknown as Config
}

export function helpText(): string {
  const lines = [
    'MLS Delivery Service: a REST API and the legacy TCP-JSON protocol over one service.',
    '',
    'Usage: npm start -- [--flag value ...]     (or: node dist/server.js [flags])',
    '',
    'Every setting is an environment variable or the matching flag (the flag wins):',
    '',
  ]
  // Columns as wide as the longest flag and variable.
  const flagWidth = Math.max(...OPTIONS.map((o) => o.flag.length + 2))
  const envWidth = Math.max(...OPTIONS.map((o) => o.env.length))
  for (const o of OPTIONS) {
    lines.push(`  ${`--${o.flag}`.padEnd(flagWidth)} ${o.env.padEnd(envWidth)} default: ${o.default}`)
    lines.push(`  ${''.padEnd(flagWidth + envWidth + 2)}${o.help}`)
  }
  lines.push(`  ${'--help, -h'.padEnd(flagWidth)} print this help and exit`, '')
  return lines.join('\n')
}

/** The settings of AUTH=jwt belong together: exactly one source of keys, and none without AUTH=jwt. */
function authProblems(config: Config): string[] {
  const keys = [config.authJwtSecret && 'AUTH_JWT_SECRET', config.authJwksUrl && 'AUTH_JWKS_URL'].filter(Boolean)
  if (config.auth === 'none') {
    const set = [...keys, config.authJwtIssuer && 'AUTH_JWT_ISSUER', config.authJwtAudience && 'AUTH_JWT_AUDIENCE'].filter(Boolean)
    return set.length > 0 ? [`${set.join(', ')} ${set.length > 1 ? 'are' : 'is'} set but AUTH=none: set AUTH=jwt to require tokens, or unset ${set.length > 1 ? 'them' : 'it'}`] : []
  }
  return keys.length === 1 ? [] : ['AUTH=jwt needs exactly one of AUTH_JWT_SECRET (a shared secret) and AUTH_JWKS_URL (the issuer\'s public keys)']
}

/** A certificate needs its key; the TCP door cannot speak TLS without them. */
function tlsProblems(config: Config): string[] {
  if ((config.tlsCertFile === '') !== (config.tlsKeyFile === '')) {
    return [`${config.tlsCertFile ? 'TLS_CERT_FILE' : 'TLS_KEY_FILE'} is set without ${config.tlsCertFile ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'}: TLS needs both the certificate and its private key`]
  }
  return config.tcpTls === 'true' && config.tlsCertFile === '' ? ['TCP_TLS=true needs TLS_CERT_FILE and TLS_KEY_FILE'] : []
}

/** A webhook needs its secret, and a secret its webhook. */
function pushProblems(config: Config): string[] {
  if ((config.pushWebhookUrl === '') === (config.pushWebhookSecret === '')) return []
  return [config.pushWebhookUrl ? 'PUSH_WEBHOOK_URL is set without PUSH_WEBHOOK_SECRET: calls to the push gateway are signed (e.g. PUSH_WEBHOOK_SECRET=whsec_$(openssl rand -base64 32))' : 'PUSH_WEBHOOK_SECRET is set without PUSH_WEBHOOK_URL: set the push gateway\'s URL, or unset the secret']
}

/** auto, or any spelling of true and false that TCP_ENABLED takes. */
function parseTcpTls(raw: string): TcpTlsMode {
  if (raw.toLowerCase() === 'auto') return 'auto'
  try {
    return parseBoolean(raw) ? 'true' : 'false'
  } catch {
    throw new Error('must be auto, true or false')
  }
}

/** Whether the TCP door speaks TLS (TCP_TLS, and TLS_CERT_FILE for auto). */
export function tcpUsesTls(config: Pick<Config, 'tcpTls' | 'tlsCertFile'>): boolean {
  return config.tcpTls === 'auto' ? config.tlsCertFile !== '' : config.tcpTls === 'true'
}

/** Accepts LOG_LEVEL names and the original's RUST_LOG forms ("debug", "mls=debug,info"). */
function parseLogLevel(raw: string): LogLevel {
  const directives = raw.toLowerCase().split(',').map((d) => d.trim()).filter(Boolean)
  const bare = directives.find((d) => !d.includes('=')) ?? directives.at(-1)?.split('=')[1]
  if (bare === 'off') return 'silent'
  return oneOf(bare ?? '', LOG_LEVELS)
}
