import { constants } from 'node:buffer'
import assert from 'node:assert/strict'
import { availableParallelism } from 'node:os'
import { describe, test } from 'node:test'
import { ConfigError, helpText, loadConfig, MAX_MESSAGE_BYTES_LIMIT, OPTIONS, tcpUsesTls, type Config } from '../../src/config.js'

const load = (env: Record<string, string> = {}, argv: string[] = []) => loadConfig(env, argv) as Config

test('defaults', () => {
  const { mlsCiphersuites, ...rest } = load()
  assert.deepEqual([...mlsCiphersuites].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88])
  assert.deepEqual(rest, {
    host: '127.0.0.1',
    httpPort: 3000,
    httpRequestTimeoutSeconds: 60,
    corsOrigins: [],
    tcpPort: 8080,
    tcpEnabled: true,
    tcpIdleTimeoutSeconds: 300,
    tlsCertFile: '',
    tlsKeyFile: '',
    tcpTls: 'auto',
    logLevel: 'info',
    logFormat: 'json',
    metrics: true,
    maxMessageBytes: 1024 * 1024,
    store: 'memory',
    databaseUrl: '',
    databasePoolSize: 10,
    databaseStatementTimeoutSeconds: 15,
    sqlitePath: 'mls-ds.sqlite',
    shutdownTimeoutMs: 5000,
    mlsValidation: 'strict',
    tcpMlsValidation: 'permissive',
    keyPackageMaxLifetimeSeconds: 90 * 86400,
    keyPackageClaimLimit: { count: 20, windowSeconds: 60 },
    messageRateLimit: null,
    maxConnections: 10000,
    maxConnectionsPerIp: 0,
    connectionRateLimit: null,
    mlsWorkers: Math.max(1, Math.min(4, availableParallelism() - 1)),
    queueMaxMessages: 10000,
    queueMaxAgeSeconds: 7 * 86400,
    idempotencyWindowSeconds: 600,
    groupLogMaxAgeSeconds: 0,
    streamPingIntervalSeconds: 30,
    streamMaxBufferedBytes: 1024 * 1024,
    streamStallTimeoutSeconds: 10,
    auth: 'none',
    authJwtSecret: '',
    authJwksUrl: '',
    authJwtIssuer: '',
    authJwtAudience: '',
    pushWebhookUrl: '',
    pushWebhookSecret: '',
    pushMinIntervalSeconds: 10,
    mlsExternalCommits: true,
  })
})

describe('AUTH=jwt', () => {
  const SECRET = 'x'.repeat(32)
  const problems = (env: Record<string, string>, argv: string[] = []) => {
    try {
      load(env, argv)
    } catch (err) {
      return (err as ConfigError).problems
    }
    return []
  }

  test('with a secret or a JWKS URL', () => {
    const withSecret = load({ AUTH: 'jwt', AUTH_JWT_SECRET: SECRET, AUTH_JWT_ISSUER: 'https://id.example.com', AUTH_JWT_AUDIENCE: 'mls' })
    assert.deepEqual([withSecret.auth, withSecret.authJwtSecret, withSecret.authJwtIssuer, withSecret.authJwtAudience], ['jwt', SECRET, 'https://id.example.com', 'mls'])
    const withJwks = load({}, ['--auth', 'jwt', '--auth-jwks-url', 'https://id.example.com/jwks.json', '--tcp-enabled', 'false'])
    assert.equal(withJwks.authJwksUrl, 'https://id.example.com/jwks.json')
  })

  test('each wrong combination is one clear problem, and the secret is never echoed', () => {
    assert.deepEqual(problems({ AUTH: 'jwt', TCP_ENABLED: 'false' }), ["AUTH=jwt needs exactly one of AUTH_JWT_SECRET (a shared secret) and AUTH_JWKS_URL (the issuer's public keys)"])
    assert.equal(problems({ AUTH: 'jwt', TCP_ENABLED: 'false', AUTH_JWT_SECRET: SECRET, AUTH_JWKS_URL: 'https://id.example.com/jwks.json' }).length, 1)
    assert.deepEqual(problems({ AUTH_JWT_SECRET: SECRET }), ['AUTH_JWT_SECRET is set but AUTH=none: set AUTH=jwt to require tokens, or unset it'])
    assert.match(problems({ AUTH_JWKS_URL: 'https://id.example.com/jwks.json', AUTH_JWT_AUDIENCE: 'mls' })[0]!, /^AUTH_JWKS_URL, AUTH_JWT_AUDIENCE are set but AUTH=none/)
    const short = problems({ AUTH: 'jwt', TCP_ENABLED: 'false', AUTH_JWT_SECRET: 'too-short-secret' })
    assert.deepEqual(short, ['AUTH_JWT_SECRET=(hidden): must be at least 32 characters (RFC 7518 §3.2)'])
    // A URL may carry credentials: never echoed either.
    assert.match(problems({ AUTH: 'jwt', AUTH_JWKS_URL: 'ftp://user:pass@id.example.com/keys' })[0]!, /^AUTH_JWKS_URL=\(hidden\): must be an http\(s\) URL/)
    assert.match(problems({ AUTH: 'oauth' })[0]!, /^AUTH="oauth": must be one of none, jwt/)
  })
})

test('TLS: the certificate and its key together; TCP_TLS follows them unless set', () => {
  const problems = (env: Record<string, string>) => {
    try {
      load(env)
    } catch (err) {
      return (err as ConfigError).problems
    }
    return []
  }
  const both = load({ TLS_CERT_FILE: '/etc/ds/cert.pem', TLS_KEY_FILE: '/etc/ds/key.pem' })
  assert.deepEqual([both.tlsCertFile, both.tlsKeyFile, tcpUsesTls(both)], ['/etc/ds/cert.pem', '/etc/ds/key.pem', true])
  assert.equal(tcpUsesTls(load({ TLS_CERT_FILE: 'c.pem', TLS_KEY_FILE: 'k.pem', TCP_TLS: 'false' })), false)
  assert.equal(tcpUsesTls(load({})), false)
  assert.deepEqual(problems({ TLS_CERT_FILE: 'c.pem' }), ['TLS_CERT_FILE is set without TLS_KEY_FILE: TLS needs both the certificate and its private key'])
  assert.deepEqual(problems({ TLS_KEY_FILE: 'k.pem' }), ['TLS_KEY_FILE is set without TLS_CERT_FILE: TLS needs both the certificate and its private key'])
  assert.deepEqual(problems({ TCP_TLS: 'true' }), ['TCP_TLS=true needs TLS_CERT_FILE and TLS_KEY_FILE'])
  for (const [raw, mode] of [['yes', 'true'], ['1', 'true'], ['ON', 'true'], ['no', 'false'], ['0', 'false'], ['off', 'false'], ['AUTO', 'auto']] as const) {
    assert.equal(load({ TLS_CERT_FILE: 'c.pem', TLS_KEY_FILE: 'k.pem', TCP_TLS: raw }).tcpTls, mode, raw)
  }
  assert.deepEqual(problems({ TCP_TLS: 'maybe' }), ['TCP_TLS="maybe": must be auto, true or false'])
})

test('TCP_IDLE_TIMEOUT: a duration, or 0 for never', () => {
  assert.equal(load({ TCP_IDLE_TIMEOUT: '0' }).tcpIdleTimeoutSeconds, 0)
  assert.equal(load({ TCP_IDLE_TIMEOUT: '90' }).tcpIdleTimeoutSeconds, 90)
  assert.equal(load({}, ['--tcp-idle-timeout', '2h']).tcpIdleTimeoutSeconds, 7200)
  for (const value of ['-1', '0s', 'soon', '1.5m']) {
    assert.throws(() => load({ TCP_IDLE_TIMEOUT: value }), (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.startsWith('TCP_IDLE_TIMEOUT='), value)
  }
})

test('MLS_WORKERS: auto, a count, or 0 for the main thread', () => {
  assert.equal(load({ MLS_WORKERS: '0' }).mlsWorkers, 0)
  assert.equal(load({}, ['--mls-workers', '3']).mlsWorkers, 3)
  assert.equal(load({ MLS_WORKERS: 'AUTO' }).mlsWorkers, Math.max(1, Math.min(4, availableParallelism() - 1)))
  for (const value of ['-1', 'many', '65']) {
    assert.throws(() => load({ MLS_WORKERS: value }), (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.startsWith('MLS_WORKERS='), value)
  }
})

test('MLS settings: ciphersuite lists, lifetimes, validation modes', () => {
  const config = load({ MLS_CIPHERSUITES: '1, 3,83', KEY_PACKAGE_MAX_LIFETIME: '12h', MLS_VALIDATION: 'permissive', TCP_MLS_VALIDATION: 'strict' })
  assert.deepEqual([...config.mlsCiphersuites].sort((a, b) => a - b), [1, 3, 83])
  assert.equal(config.keyPackageMaxLifetimeSeconds, 12 * 3600)
  assert.equal(config.mlsValidation, 'permissive')
  assert.equal(config.tcpMlsValidation, 'strict')
  assert.equal(load({ KEY_PACKAGE_MAX_LIFETIME: '3600' }).keyPackageMaxLifetimeSeconds, 3600)
  for (const [env, value] of [['MLS_CIPHERSUITES', '1,4660'], ['MLS_CIPHERSUITES', 'nonsense'], ['KEY_PACKAGE_MAX_LIFETIME', '90 days'], ['KEY_PACKAGE_MAX_LIFETIME', '0s'], ['QUEUE_MAX_AGE', '-1'], ['QUEUE_MAX_MESSAGES', '0'], ['MLS_VALIDATION', 'lax']] as const) {
    assert.throws(() => load({ [env]: value }), (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.startsWith(`${env}=`), `${env}=${value}`)
  }
})

test('CORS_ORIGINS: none by default, * for any, or a list of origins written as browsers send them', () => {
  assert.deepEqual(load({ CORS_ORIGINS: '*' }).corsOrigins, ['*'])
  assert.deepEqual(load({ CORS_ORIGINS: 'https://chat.example.com, http://localhost:5173,https://chat.example.com' }).corsOrigins, ['https://chat.example.com', 'http://localhost:5173'])
  assert.deepEqual(load({}, ['--cors-origins', 'https://a.example']).corsOrigins, ['https://a.example'])
  for (const value of ['https://chat.example.com/', 'https://chat.example.com/app', 'chat.example.com', 'ftp://files.example.com', 'https://Chat.Example.com', '*,https://a.example', 'https://a.example:443']) {
    assert.throws(() => load({ CORS_ORIGINS: value }), (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.startsWith('CORS_ORIGINS='), value)
  }
})

test('KEY_PACKAGE_CLAIM_LIMIT: <count>/<window>, or 0 for none', () => {
  assert.deepEqual(load({ KEY_PACKAGE_CLAIM_LIMIT: '100/1h' }).keyPackageClaimLimit, { count: 100, windowSeconds: 3600 })
  assert.deepEqual(load({}, ['--key-package-claim-limit', '3 / 10']).keyPackageClaimLimit, { count: 3, windowSeconds: 10 })
  assert.equal(load({ KEY_PACKAGE_CLAIM_LIMIT: '0' }).keyPackageClaimLimit, null)
  assert.equal(load({ KEY_PACKAGE_CLAIM_LIMIT: 'off' }).keyPackageClaimLimit, null)
  for (const value of ['20', '/1m', '0/1m', '20/0s', '20/2d', '20/minute', '-1/1m']) {
    assert.throws(() => load({ KEY_PACKAGE_CLAIM_LIMIT: value }), (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.startsWith('KEY_PACKAGE_CLAIM_LIMIT='), value)
  }
})

test('MAX_CONNECTIONS (10000 by default), MAX_CONNECTIONS_PER_IP and CONNECTION_RATE_LIMIT (none by default); 0 for none', () => {
  assert.equal(load({ MAX_CONNECTIONS: '0' }).maxConnections, 0)
  assert.equal(load({}, ['--max-connections', '50000']).maxConnections, 50000)
  assert.equal(load({ MAX_CONNECTIONS_PER_IP: '100' }).maxConnectionsPerIp, 100)
  assert.deepEqual(load({ CONNECTION_RATE_LIMIT: '100/1m' }).connectionRateLimit, { count: 100, windowSeconds: 60 })
  assert.deepEqual(load({}, ['--connection-rate-limit', '5/10s']).connectionRateLimit, { count: 5, windowSeconds: 10 })
  assert.deepEqual(problemsOf({ MAX_CONNECTIONS: '-1', MAX_CONNECTIONS_PER_IP: 'many', CONNECTION_RATE_LIMIT: '100' }), [
    'MAX_CONNECTIONS="-1": must be a whole number from 0 to 10000000',
    'MAX_CONNECTIONS_PER_IP="many": must be a whole number from 0 to 10000000',
    'CONNECTION_RATE_LIMIT="100": must be <count>/<window> such as 20/1m, or 0 for no limit',
  ])
})

test('MESSAGE_RATE_LIMIT: none by default, <messages>/<window>, or 0 for none', () => {
  assert.equal(load({}).messageRateLimit, null)
  assert.deepEqual(load({ MESSAGE_RATE_LIMIT: '600/1m' }).messageRateLimit, { count: 600, windowSeconds: 60 })
  assert.deepEqual(load({}, ['--message-rate-limit', '5/10s']).messageRateLimit, { count: 5, windowSeconds: 10 })
  assert.equal(load({ MESSAGE_RATE_LIMIT: 'off' }).messageRateLimit, null)
  assert.deepEqual(problemsOf({ MESSAGE_RATE_LIMIT: '600' }), ['MESSAGE_RATE_LIMIT="600": must be <count>/<window> such as 20/1m, or 0 for no limit'])
  assert.match(problemsOf({ MESSAGE_RATE_LIMIT: '0/1m' })[0] ?? '', /^MESSAGE_RATE_LIMIT="0\/1m": the count must be from 1 to 1000000/)
})

test('GROUP_LOG_MAX_AGE: off (0) by default, a duration, never shorter than QUEUE_MAX_AGE or IDEMPOTENCY_WINDOW', () => {
  assert.equal(load({ GROUP_LOG_MAX_AGE: '30d' }).groupLogMaxAgeSeconds, 30 * 86400)
  assert.equal(load({ QUEUE_MAX_AGE: '10m' }, ['--group-log-max-age', '10m']).groupLogMaxAgeSeconds, 600)
  assert.equal(load({ GROUP_LOG_MAX_AGE: '1s', IDEMPOTENCY_WINDOW: '1s', QUEUE_MAX_AGE: '1s' }).groupLogMaxAgeSeconds, 1)
  assert.deepEqual(problemsOf({ GROUP_LOG_MAX_AGE: '5m', QUEUE_MAX_AGE: '1m' }), ['GROUP_LOG_MAX_AGE (300 s) must be 0 or at least IDEMPOTENCY_WINDOW (600 s): a retry within the window must find the message it repeats'])
  assert.deepEqual(problemsOf({ GROUP_LOG_MAX_AGE: '1d' }), ['GROUP_LOG_MAX_AGE (86400 s) must be 0 or at least QUEUE_MAX_AGE (604800 s): a message leaves the log only once no queue may still hold it'])
  assert.match(problemsOf({ GROUP_LOG_MAX_AGE: 'a month' })[0] ?? '', /^GROUP_LOG_MAX_AGE="a month": must be a whole number of seconds/)
  assert.deepEqual(problemsOf({ GROUP_LOG_MAX_AGE: '36501d' }), ['GROUP_LOG_MAX_AGE="36501d": must be at most 36500d'])
})

test('push notifications: off by default; PUSH_WEBHOOK_URL and PUSH_WEBHOOK_SECRET together, the secret never echoed', () => {
  const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`
  const off = load({})
  assert.deepEqual([off.pushWebhookUrl, off.pushWebhookSecret, off.pushMinIntervalSeconds], ['', '', 10])
  const on = load({ PUSH_WEBHOOK_URL: 'https://push.example.com/mls', PUSH_WEBHOOK_SECRET: secret, PUSH_MIN_INTERVAL: '0' })
  assert.deepEqual([on.pushWebhookUrl, on.pushWebhookSecret, on.pushMinIntervalSeconds], ['https://push.example.com/mls', secret, 0])
  assert.equal(load({}, ['--push-min-interval', '1m']).pushMinIntervalSeconds, 60)
  assert.deepEqual(problemsOf({ PUSH_WEBHOOK_URL: 'https://push.example.com/mls' }), ['PUSH_WEBHOOK_URL is set without PUSH_WEBHOOK_SECRET: calls to the push gateway are signed (e.g. PUSH_WEBHOOK_SECRET=whsec_$(openssl rand -base64 32))'])
  assert.deepEqual(problemsOf({ PUSH_WEBHOOK_SECRET: secret }), ["PUSH_WEBHOOK_SECRET is set without PUSH_WEBHOOK_URL: set the push gateway's URL, or unset the secret"])
  assert.deepEqual(problemsOf({ PUSH_WEBHOOK_URL: 'ftp://push.example.com/x?key=hidden', PUSH_WEBHOOK_SECRET: 'whsec_hidden' }), [
    'PUSH_WEBHOOK_URL=(hidden): must be an http(s) URL such as https://push.example.com/mls-deliveries',
    'PUSH_WEBHOOK_SECRET=(hidden): the part after whsec_ must be standard base64 (with padding)',
  ])
  assert.match(problemsOf({ PUSH_MIN_INTERVAL: 'soon' })[0] ?? '', /^PUSH_MIN_INTERVAL="soon": must be a whole number of seconds/)
  assert.deepEqual(problemsOf({ PUSH_MIN_INTERVAL: '2d' }), ['PUSH_MIN_INTERVAL="2d": must be at most 1d'])
  assert.deepEqual(problemsOf({ PUSH_WEBHOOK_URL: 'https://user:pass@push.example.com/x', PUSH_WEBHOOK_SECRET: secret }), ['PUSH_WEBHOOK_URL=(hidden): must not hold a user name or password (calls are signed with PUSH_WEBHOOK_SECRET)'])
})

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    load(env)
  } catch (err) {
    return (err as ConfigError).problems
  }
  return []
}

test('environment values, and flags that win over them', () => {
  const config = load({ HOST: '0.0.0.0', HTTP_PORT: '0', TCP_PORT: '9000', TCP_ENABLED: 'false', MAX_MESSAGE_BYTES: '2048', METRICS: 'true' }, ['--tcp-port', '9001', '--log-level=debug', '--metrics', 'false'])
  assert.equal(config.host, '0.0.0.0')
  assert.equal(config.httpPort, 0)
  assert.equal(config.tcpPort, 9001)
  assert.equal(config.tcpEnabled, false)
  assert.equal(config.logLevel, 'debug')
  assert.equal(config.maxMessageBytes, 2048)
  assert.equal(config.metrics, false)
})

test('RUST_LOG is honoured when LOG_LEVEL is unset, in the original\'s forms', () => {
  assert.equal(load({ RUST_LOG: 'debug' }).logLevel, 'debug')
  assert.equal(load({ RUST_LOG: 'TRACE' }).logLevel, 'trace')
  assert.equal(load({ RUST_LOG: 'mls_delivery_service=warn' }).logLevel, 'warn')
  assert.equal(load({ RUST_LOG: 'hyper=info,error' }).logLevel, 'error')
  assert.equal(load({ RUST_LOG: 'off' }).logLevel, 'silent')
  assert.equal(load({ RUST_LOG: 'debug', LOG_LEVEL: 'warn' }).logLevel, 'warn')
})

test('MAX_MESSAGE_BYTES is at most 64 MiB: a TCP answer of that much data, as byte values, must fit in a string', () => {
  assert.equal(load({ MAX_MESSAGE_BYTES: String(64 * 1024 * 1024) }).maxMessageBytes, 64 * 1024 * 1024)
  assert.throws(() => load({ MAX_MESSAGE_BYTES: String(64 * 1024 * 1024 + 1) }), (err) => err instanceof ConfigError && /^MAX_MESSAGE_BYTES=.*must be a whole number from 64 to 67108864/.test(err.problems[0]!))
  // Four characters per byte of a page, and room for the rest of the answer.
  assert.ok(4 * MAX_MESSAGE_BYTES_LIMIT + 1024 * 1024 < constants.MAX_STRING_LENGTH)
})

test('every bad value is reported on its own line, naming the variable', () => {
  try {
    load({ HTTP_PORT: '70000', TCP_PORT: 'eighty', TCP_ENABLED: 'maybe', LOG_LEVEL: 'loud', MAX_MESSAGE_BYTES: '-1', STORE: 'redis' })
    assert.fail('expected a ConfigError')
  } catch (err) {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.problems.length, 6)
    for (const name of ['HTTP_PORT', 'TCP_PORT', 'TCP_ENABLED', 'LOG_LEVEL', 'MAX_MESSAGE_BYTES', 'STORE']) {
      assert.ok(err.problems.some((p) => p.startsWith(`${name}=`)), name)
    }
  }
})

test('storage: STORE=postgres needs DATABASE_URL; a bad URL is reported without echoing it', () => {
  const config = load({ STORE: 'postgres', DATABASE_URL: 'postgres://mls:secret@db:5432/mls', DATABASE_POOL_SIZE: '25' })
  assert.equal(config.store, 'postgres')
  assert.equal(config.databaseUrl, 'postgres://mls:secret@db:5432/mls')
  assert.equal(config.databasePoolSize, 25)
  assert.equal(load({ STORE: 'postgres' }, ['--database-url', 'postgresql://h/db']).databaseUrl, 'postgresql://h/db')
  assert.throws(() => load({ STORE: 'postgres' }), (err: ConfigError) => err.problems.length === 1 && err.problems[0]!.startsWith('DATABASE_URL is required with STORE=postgres'))
  assert.throws(() => load({ DATABASE_URL: 'mysql://u:hunter2@h/db' }), (err: ConfigError) => err.problems[0]!.startsWith('DATABASE_URL=(hidden): ') && !err.problems[0]!.includes('hunter2'))
  for (const bad of ['0', '1001', 'ten']) assert.throws(() => load({ DATABASE_POOL_SIZE: bad }), ConfigError, bad)
  assert.equal(load({ STORE: 'memory', SQLITE_PATH: '/var/lib/mls/ds.sqlite' }).sqlitePath, '/var/lib/mls/ds.sqlite')
})

test('a bad flag names the flag; an unknown flag is an error', () => {
  assert.throws(() => load({}, ['--http-port', 'x']), (err: ConfigError) => err.problems[0]!.startsWith('--http-port='))
  assert.throws(() => load({}, ['--frobnicate']), ConfigError)
})

test('--help is recognised, and the help text lists every variable and flag', () => {
  assert.deepEqual(loadConfig({}, ['--help']), { help: true })
  const text = helpText()
  for (const o of OPTIONS) {
    assert.ok(text.includes(o.env), o.env)
    assert.ok(text.includes(`--${o.flag}`), o.flag)
  }
})
