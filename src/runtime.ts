import type { AddressInfo } from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import { tokenVerifier } from './auth/token-verifier.js'
import { tcpUsesTls, type Config } from './config.js'
import { ConnectionGate } from './connection-gate.js'
import { createKeyPackageInspector } from './mls/index.js'
import { fileLimitWarning, openFileLimit } from './open-file-limit.js'
import { openSockets } from './open-sockets.js'
import { PushNotifier } from './push/notifier.js'
import { LogRetention } from './service/log-retention.js'
import { WebhookChannel } from './push/webhook.js'
import { DeliveryService } from './service/delivery-service.js'
import { ServiceMetrics } from './service/metrics.js'
import { createBackend, type Store } from './storage/index.js'
import { createTcpServer, type TcpServer } from './tcp/server.js'
import { logCertificate, readTlsCredentials, TlsError } from './tls.js'

export interface RunningService {
  readonly app: FastifyInstance
  readonly service: DeliveryService
  readonly store: Store
  readonly tcp: TcpServer | undefined
  readonly httpPort: number
  readonly tcpPort: number | undefined
  /** The connections of both doors against MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP and CONNECTION_RATE_LIMIT. */
  readonly connections: ConnectionGate
  /** Whether the REST door is HTTPS (TLS_CERT_FILE). */
  readonly https: boolean
  /**
   * Reads TLS_CERT_FILE and TLS_KEY_FILE again (SIGHUP) and serves them to new connections of
   * both doors; open connections keep theirs. Files that cannot be used are logged and the
   * certificate served is kept. False when nothing was reloaded.
   */
  reloadTls(): Promise<boolean>
  /** Stops accepting, lets requests in flight finish, closes connections and the store. */
  close(): Promise<void>
}

/** A listener could not bind; names the port and the setting to change. */
export class ListenError extends Error {
  constructor(readonly setting: 'HTTP_PORT' | 'TCP_PORT', readonly port: number, readonly host: string, cause: NodeJS.ErrnoException) {
    super(cause.code === 'EADDRINUSE'
      ? `port ${port} on ${host} is already in use; stop the other process or set ${setting} (or --${setting.toLowerCase().replace('_', '-')}) to another port`
      : `cannot listen on ${host}:${port} (${setting}): ${cause.code ?? cause.message}`)
    this.name = 'ListenError'
  }
}

/** Builds the store, the one service and both doors over it, and starts listening. */
export async function startService(config: Config, logger: Logger): Promise<RunningService> {
  // Before anything is opened: unusable files end the start with a TlsError.
  const tls = config.tlsCertFile ? await readTlsCredentials(config.tlsCertFile, config.tlsKeyFile) : undefined
  if (tls) logCertificate(logger, tls.certificate, 'TLS certificate loaded')
  const backend = await createBackend(config, logger)
  const { store, bus } = backend
  // KeyPackage signatures are verified on worker threads (MLS_WORKERS); they end with the app.
  const keyPackages = createKeyPackageInspector(config.mlsWorkers)
  const metrics = new ServiceMetrics()
  if (config.metrics) metrics.collectProcessMetrics()
  // PUSH_WEBHOOK_URL: clients that do not listen on this instance are told of new deliveries.
  const push = config.pushWebhookUrl
    ? new PushNotifier({
      channel: new WebhookChannel({ url: config.pushWebhookUrl, secret: config.pushWebhookSecret }),
      minIntervalMs: config.pushMinIntervalSeconds * 1000,
      listening: (clientId) => bus.listening(clientId),
      log: logger,
      counts: metrics,
    })
    : undefined
  if (push) bus.whenMissed((clientId) => push.missed(clientId))
  const service = new DeliveryService({
    metrics,
    claimLimiter: config.keyPackageClaimLimit ? backend.rateLimiter('claims', config.keyPackageClaimLimit) : undefined,
    messageLimiter: config.messageRateLimit ? backend.rateLimiter('messages', config.messageRateLimit) : undefined,
    store,
    bus,
    log: logger,
    mls: { allowedCiphersuites: config.mlsCiphersuites, maxLifetimeSeconds: config.keyPackageMaxLifetimeSeconds },
    inspectKeyPackage: keyPackages.inspect,
    // The largest request also bounds the message data of one page of a read, on both doors.
    pageMaxBytes: config.maxMessageBytes,
    push,
    externalCommits: config.mlsExternalCommits,
  })
  // GROUP_LOG_MAX_AGE: old messages leave the groups' logs; swept until the store closes.
  const retention = config.groupLogMaxAgeSeconds > 0
    ? new LogRetention({ store, maxAgeMs: config.groupLogMaxAgeSeconds * 1000, log: logger, counts: metrics })
    : undefined
  // AUTH=jwt: one verifier (and its cache of verified tokens) for both doors.
  const verifier = tokenVerifier(config, logger)
  // MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP and CONNECTION_RATE_LIMIT: both doors count together.
  const connections = new ConnectionGate({ limits: config, metrics, log: logger })
  const unreachable = fileLimitWarning(config.maxConnections, openFileLimit())
  if (unreachable) logger.warn(unreachable)
  const app = await buildApp({ config, service, logger, verifier, tls, connections })
  app.addHook('onClose', () => keyPackages.close())
  const stream = { maxBufferedBytes: config.streamMaxBufferedBytes, stallTimeoutMs: config.streamStallTimeoutSeconds * 1000, keepAliveMs: config.streamPingIntervalSeconds * 1000 }
  const tcp = config.tcpEnabled ? createTcpServer({ service, maxMessageBytes: config.maxMessageBytes, log: logger, mlsValidation: config.tcpMlsValidation, idleTimeoutMs: config.tcpIdleTimeoutSeconds * 1000, stream, verifier, tls: tcpUsesTls(config) ? tls : undefined, connections }) : undefined

  // Node's close() waits for every connection, and closes only answered keep-alive ones for it.
  const httpSockets = openSockets(app.server)

  let httpPort: number
  let tcpPort: number | undefined
  // Fastify logs a line of its own per address it listens on; the line below names the door instead.
  const level = app.log.level
  app.log.level = 'silent'
  try {
    await app.listen({ host: config.host, port: config.httpPort })
    httpPort = (app.server.address() as AddressInfo).port
  } catch (err) {
    await backend.close()
    throw new ListenError('HTTP_PORT', config.httpPort, config.host, err as NodeJS.ErrnoException)
  } finally {
    app.log.level = level
  }
  logger.info(`MLS Delivery Service running on ${config.host}:${httpPort} (${tls ? 'HTTPS' : 'HTTP'} REST API${config.auth === 'jwt' ? ', bearer tokens required' : ''})`)
  if (tcp) {
    try {
      tcpPort = (await tcp.listen(config.tcpPort, config.host)).port
    } catch (err) {
      await app.close()
      await backend.close()
      throw new ListenError('TCP_PORT', config.tcpPort, config.host, err as NodeJS.ErrnoException)
    }
    logger.info(`MLS Delivery Service running on ${config.host}:${tcpPort} (legacy TCP-JSON${tcp.tls ? ' over TLS' : ''})`)
  }
  retention?.start()

  let closing: Promise<void> | undefined
  const close = () => {
    closing ??= (async () => {
      // SHUTDOWN_TIMEOUT_MS for requests in flight; then whatever is still open is cut, so the stop ends.
      const cut = setTimeout(() => {
        for (const socket of httpSockets) socket.destroy()
      }, config.shutdownTimeoutMs)
      cut.unref()
      try {
        await Promise.all([tcp?.close(), app.close()])
      } finally {
        clearTimeout(cut)
      }
      // Notifications not yet sent are dropped: the deliveries stay queued, and clients read them when they connect.
      push?.close()
      await retention?.stop()
      await backend.close()
    })()
    return closing
  }
  const reloadTls = async (): Promise<boolean> => {
    if (!tls) return false
    try {
      const fresh = await readTlsCredentials(config.tlsCertFile, config.tlsKeyFile)
      ;(app.server as unknown as TlsServer).setSecureContext({ cert: fresh.cert, key: fresh.key })
      if (tcp?.tls) tcp.setCredentials(fresh)
      logCertificate(logger, fresh.certificate, 'TLS certificate reloaded')
      return true
    } catch (err) {
      // Files in the middle of being replaced, a key Node cannot use: the old certificate stays.
      logger.error(err instanceof TlsError ? {} : { err }, `TLS certificate not reloaded, the one loaded before is still served: ${(err as Error).message}`)
      return false
    }
  }
  return { app, service, store, tcp, connections, httpPort, tcpPort, https: tls !== undefined, reloadTls, close }
}
