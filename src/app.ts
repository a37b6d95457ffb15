import type http from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import cors from '@fastify/cors'
import websocket from '@fastify/websocket'
import { MemberAccess, OPEN_ACCESS, type AccessPolicy } from './auth/access-policy.js'
import { tokenVerifier, type TokenVerifier } from './auth/token-verifier.js'
import type { Config } from './config.js'
import type { ConnectionGate } from './connection-gate.js'
import { ServiceError } from './errors.js'
import { requireBearerTokens } from './http/authentication.js'
import { answerRefusedConnections } from './http/connection-refusal.js'
import { clientErrorHandler, frameworkErrors, invalidJson, registerErrorHandlers } from './http/error-handler.js'
import { LevelAwareLogController, serializeRequest } from './http/log-controller.js'
import { clientRoutes } from './http/routes/clients.js'
import { groupRoutes } from './http/routes/groups.js'
import { healthRoutes } from './http/routes/health.js'
import { keyPackageRoutes } from './http/routes/key-packages.js'
import { messageRoutes } from './http/routes/messages.js'
import { metricsRoutes } from './http/routes/metrics.js'
import { documentBearerAuth, registerDocs } from './http/swagger.js'
import { requireHostHeader } from './http/host-header.js'
import { serveInOrder } from './http/request-order.js'
import { gateUpgrades } from './http/upgrade-gate.js'
import { describeValidationError, validatorCompiler } from './http/validation.js'
import type { DeliveryService } from './service/delivery-service.js'
import { TLS_HANDSHAKE_TIMEOUT_MS, type TlsCredentials } from './tls.js'

export interface AppOptions {
  readonly config: Pick<Config, 'auth' | 'authJwtSecret' | 'authJwksUrl' | 'authJwtIssuer' | 'authJwtAudience' | 'corsOrigins' | 'httpRequestTimeoutSeconds' | 'maxMessageBytes' | 'metrics' | 'mlsValidation' | 'streamMaxBufferedBytes' | 'streamStallTimeoutSeconds' | 'streamPingIntervalSeconds'>
  readonly service: DeliveryService
  readonly logger: Logger
  /** AUTH=jwt: the process's one verifier (shared with the TCP door); made from `config` when not given. */
  readonly verifier?: TokenVerifier
  /** TLS_CERT_FILE and TLS_KEY_FILE, read: the app is served over HTTPS. */
  readonly tls?: TlsCredentials
  /** A connection that has not finished its TLS handshake by then is dropped (TLS_HANDSHAKE_TIMEOUT_MS by default). */
  readonly tlsHandshakeTimeoutMs?: number
  /** The connection limits of the process (shared with the TCP door); none when not given. */
  readonly connections?: ConnectionGate
}

/** Builds the REST app over the given service. Never listens: see server.ts. */
export async function buildApp({ config, service, logger, verifier = tokenVerifier(config, logger), tls, tlsHandshakeTimeoutMs = TLS_HANDSHAKE_TIMEOUT_MS, connections }: AppOptions): Promise<FastifyInstance> {
  const requestTimeoutMs = config.httpRequestTimeoutSeconds * 1000
  const serverOptions: http.ServerOptions = {
    // Answered by requireHostHeader in the service's shape rather than Node's empty 400.
    requireHostHeader: false,
    ...(requestTimeoutMs > 0
      ? {
          // Node checks the timeouts only with the headers' no longer than the request's (its default is 60 s).
          headersTimeout: Math.min(60_000, requestTimeoutMs),
          // Every quarter of the timeout, so a short one is kept too (Node's default is every 30 s).
          connectionsCheckingInterval: Math.min(30_000, Math.max(250, requestTimeoutMs / 4)),
        }
      : {}),
  }
  const app = Fastify({
    loggerInstance: logger.child({}, { serializers: { req: serializeRequest } }) as FastifyBaseLogger,
    bodyLimit: config.maxMessageBytes,
    // Ids may be 256 characters, percent-encoded up to 12 bytes each.
    routerOptions: { maxParamLength: 4096 },
    return503OnClosing: true,
    logController: new LevelAwareLogController(logger),
    schemaErrorFormatter: (errors, dataVar) => new Error(describeValidationError(errors[0]!, dataVar)),
    frameworkErrors: frameworkErrors(service.metrics),
    clientErrorHandler: clientErrorHandler(service.metrics),
    // The whole request, body included, within this (HTTP_REQUEST_TIMEOUT).
    requestTimeout: requestTimeoutMs,
    http: serverOptions,
    // TLS_CERT_FILE: HTTPS (and wss:// streams), with the same server options.
    ...(tls ? { https: { ...serverOptions, cert: tls.cert, key: tls.key, handshakeTimeout: tlsHandshakeTimeoutMs } } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(validatorCompiler)
  // Fastify's JSON parser refuses a syntax error and a prototype key alike, without saying which.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parseJson(request, body as string, (err, value) => done(err && (err as FastifyError).code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? invalidJson(body as string) : err, value))
  })
  // Bodies are JSON or raw MLS; a text body is a 415, not a string that fails validation.
  app.removeContentTypeParser('text/plain')
  // RFC 9420 §17.10: the media type of MLS wire messages, for the routes whose body schema names it;
  // elsewhere it is a 415 rather than bytes that fail a JSON schema.
  app.addContentTypeParser('message/mls', { parseAs: 'buffer' }, (request, body, done) => {
    if (takesRawMls(request.routeOptions.schema?.body)) done(null, body)
    else done(new ServiceError('unsupported_media_type', `${request.method} ${request.routeOptions.url} takes application/json, not message/mls`), undefined)
  })
  registerErrorHandlers(app, service.metrics)
  if (config.corsOrigins.length > 0) await registerCors(app, config.corsOrigins)
  await registerDocs(app)
  await app.register(healthRoutes, { service })
  if (config.metrics) await app.register(metricsRoutes, { service })
  const access = verifier ? new MemberAccess(service) : OPEN_ACCESS
  // The API's routes, behind bearer tokens with AUTH=jwt; health, readiness, metrics and the docs stay open.
  await app.register(async (api) => {
    documentBearerAuth(api)
    if (verifier) requireBearerTokens(api, verifier, { queryTokenRoutes: new Set([STREAM_ROUTE]) })
    await registerApiRoutes(api, { config, service, access })
  })
  requireHostHeader(app.server, service.metrics)
  if (connections) {
    connections.watch(app.server, 'rest')
    answerRefusedConnections(app.server, connections, service.metrics, config.corsOrigins)
  }
  serveInOrder(app.server)
  gateUpgrades(app.server, (url) => STREAM_PATH.test(url), connections ? (socket) => connections.refusalOf(socket) !== undefined : undefined)
  return app
}

async function registerApiRoutes(app: FastifyInstance, { config, service, access }: Pick<AppOptions, 'config' | 'service'> & { access: AccessPolicy }): Promise<void> {
  const validation = config.mlsValidation
  await app.register(keyPackageRoutes, { service, validation, access })
  await app.register(groupRoutes, { service, access })
  await app.register(messageRoutes, { service, validation, access })
  // @fastify/websocket adds an onRequest and an onResponse hook and wraps the handler of every
  // route in its scope: keep it to the routes that stream, so relaying pays none of that.
  await app.register(async (streaming) => {
    await streaming.register(websocket, {
      // ws has already closed a stream that sent a bad frame (1009 too large, 1002): the client's
      // mistake, logged at debug; anything else is ours.
      errorHandler(error, socket, request) {
        if ((error as NodeJS.ErrnoException).code?.startsWith('WS_ERR_')) request.log.debug({ err: error }, 'WebSocket stream: bad frame from the client')
        else request.log.error({ err: error }, 'WebSocket stream failed')
        socket.terminate()
      },
      // A `send` frame carries a message: it may be as large as a REST body.
      options: { maxPayload: config.maxMessageBytes },
      // Tell live streams why they end, so clients reconnect elsewhere with their cursor.
      preClose(done) {
        for (const client of this.websocketServer.clients) client.close(1001, 'server shutting down')
        this.websocketServer.close()
        done()
      },
    })
    await streaming.register(clientRoutes, {
      service,
      access,
      corsOrigins: config.corsOrigins,
      stream: {
        maxBufferedBytes: config.streamMaxBufferedBytes,
        stallTimeoutMs: config.streamStallTimeoutSeconds * 1000,
        pingIntervalMs: config.streamPingIntervalSeconds * 1000,
        validation,
      },
    })
  })
}

const STREAM_ROUTE = '/clients/:client/stream'
/** Where WebSocket handshakes are taken (routes/clients.ts); elsewhere an Upgrade header is ignored (upgrade-gate.ts). */
const STREAM_PATH = /^\/clients\/[^/?#]+\/stream(?:[?#]|$)/

/**
 * CORS for browser apps on the configured origins (CORS_ORIGINS): their pages may call every
 * route, send JSON or message/mls with an Idempotency-Key and a bearer token, read the
 * WWW-Authenticate and Retry-After of an answer, and cache a preflight for 10 minutes.
 * Not registered at all when no origin is configured, so requests pay for no hook.
 */
async function registerCors(app: FastifyInstance, origins: readonly string[]): Promise<void> {
  await app.register(cors, {
    origin: origins.includes('*') ? '*' : [...origins],
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
    allowedHeaders: ['content-type', 'accept', 'idempotency-key', 'authorization'],
    // A page may read why it must sign in again (401) and when to retry (429).
    exposedHeaders: ['www-authenticate', 'retry-after'],
    maxAge: 600,
    // An OPTIONS request without CORS headers (curl) gets the headers, not a text/plain 400.
    strictPreflight: false,
  })
}

/** Whether a route's body schema has a message/mls content (e.g. PUT /key-packages/{client}). */
function takesRawMls(body: unknown): boolean {
  const content = (body as { content?: Record<string, unknown> } | undefined)?.content
  return content !== undefined && Object.hasOwn(content, 'message/mls')
}
