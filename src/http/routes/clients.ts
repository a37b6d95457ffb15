import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ServiceError } from '../../errors.js'
import { ClientDeletedReplySchema, ClientGroupsQuerySchema, ClientGroupsReplySchema } from '../../schemas/clients.js'
import { ClientParamsSchema, errorResponse, errorResponses } from '../../schemas/common.js'
import {
  AckBodySchema,
  AckReplySchema,
  DeliveriesQuerySchema,
  DeliveriesReplySchema,
  PageQuerySchema,
  StreamQuerySchema,
  WelcomesReplySchema,
} from '../../schemas/messages.js'
import { clientDeletedView, clientGroupsView, deliveryView, gapView, toBase64, welcomeView } from '../../schemas/views.js'
import type { DeliveryService } from '../../service/delivery-service.js'
import type { AccessPolicy } from '../../auth/access-policy.js'
import { assertStreamOrigin } from '../stream-origin.js'
import { assertHandshake, CLOSE_CODES, closeAtExpiry, serveStream, type ServedStream, type StreamOptions } from '../websocket-stream.js'

const tags = ['clients']

export interface ClientRoutesOptions {
  readonly service: DeliveryService
  readonly stream: StreamOptions
  /** CORS_ORIGINS: besides its own, the web origins whose pages may open streams. */
  readonly corsOrigins: readonly string[]
  readonly access: AccessPolicy
}

export const clientRoutes: FastifyPluginAsyncTypebox<ClientRoutesOptions> = async (app, { service, stream, corsOrigins, access }) => {
  const streams = new Set<ServedStream>()
  // Long polls in progress: they stop waiting when their client goes away or the service stops.
  const waits = new Set<AbortController>()
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
    for (const controller of waits) controller.abort()
  })
  /**
   * Runs `wait` until it is done, its client goes away or the service stops. A request that
   * reaches here after the stop began or after its client left (while its token was verified)
   * gets an aborted signal, so it reads once and answers.
   */
  const waiting = async <T>(request: FastifyRequest, reply: FastifyReply, wait: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    const controller = new AbortController()
    const gone = () => controller.abort()
    waits.add(controller)
    reply.raw.once('close', gone)
    if (closing || request.raw.socket.destroyed) controller.abort()
    try {
      return await wait(controller.signal)
    } finally {
      waits.delete(controller)
      reply.raw.off('close', gone)
    }
  }

  app.get('/clients/:client/messages', {
    schema: {
      summary: "Pull the client's queue: every group message and Welcome routed to it, in order",
      description: 'Deliveries stay until acknowledged (or dropped by retention, which is reported as `gap`). ' +
        'With `wait`, a read that finds nothing waits for the next delivery (long polling, for clients that cannot keep a WebSocket): ' +
        'it answers as soon as one is queued, or with an empty page after `wait` seconds (at once while the service stops; with AUTH=jwt at the latest when the token expires); ask again with `after` = `next_after`. ' +
        'Requests pipelined behind it on the same connection wait for its answer.',
      tags,
      params: ClientParamsSchema,
      querystring: DeliveriesQuerySchema,
      response: { 200: DeliveriesReplySchema, ...errorResponses(400, 403) },
    },
  }, async (request, reply) => {
    const { client } = request.params
    access.self(request.caller, client, 'read its queue')
    const { after, limit, wait } = request.query
    // With AUTH=jwt no longer than the token is accepted, as a stream ends at its expiry.
    const waitMs = request.caller ? Math.min(wait * 1000, request.caller.expiresAt - Date.now()) : wait * 1000
    const page = waitMs > 0 ? await waiting(request, reply, (signal) => service.waitForDeliveries(client, after, limit, waitMs, signal)) : await service.readDeliveries(client, after, limit)
    const last = page.deliveries.at(-1)?.seq
    const nextAfter = last ?? (page.gap ? page.gap.firstAvailableSeq - 1 : after)
    return {
      client_id: client,
      deliveries: page.deliveries.map((d) => deliveryView(d, toBase64)),
      next_after: nextAfter,
      ...(page.gap ? { gap: gapView(page.gap) } : {}),
    }
  })

  app.post('/clients/:client/ack', {
    schema: {
      summary: 'Acknowledge deliveries: drop everything up to a seq',
      tags,
      params: ClientParamsSchema,
      body: AckBodySchema,
      response: { 200: AckReplySchema, ...errorResponses(400, 403, 413, 415) },
    },
  }, async (request) => {
    const { client } = request.params
    access.self(request.caller, client, 'acknowledge its deliveries')
    const result = await service.ack(client, request.body.up_to)
    return { client_id: client, acked_up_to: result.ackedUpTo, remaining: result.remaining }
  })

  app.route({
    method: 'GET',
    url: '/clients/:client/stream',
    // Before anything else: a page of another site gets a 403 and no WebSocket.
    onRequest: async (request) => assertStreamOrigin(request.headers.origin, request.headers.host, corsOrigins),
    // What subscribing would refuse (an `after` or id the store cannot take) is a 400 before the upgrade.
    preHandler: async (request) => {
      access.self(request.caller, request.params.client, 'stream its queue')
      service.checkSubscription(request.params.client, request.query.after)
      if (request.ws) assertHandshake(request.headers)
    },
    schema: {
      // OpenAPI cannot describe a WebSocket; the README does.
      hide: true,
      summary: "Live stream of the client's queue over WebSocket",
      description: 'Replays what is queued after `after`, then streams new deliveries as they are accepted, in order, with no gap ' +
        'and no duplicate. One JSON text frame per delivery (the delivery object at the top level, as in the pull answer); a ' +
        '`{"type":"gap","missed_from","first_available_seq"}` frame when retention dropped deliveries. Send ' +
        '`{"type":"ack","up_to":N}` to acknowledge (answered with `{"type":"ack","acked_up_to","remaining"}`), and ' +
        '`{"type":"send","id"?,"group_id","message","message_type"?,"idempotency_key"?}` to relay a message as this client exactly as ' +
        'POST /groups/{group}/messages does (answered in order with `{"type":"sent","id","group_id","seq","epoch","message_type"}` or ' +
        '`{"type":"error","id","error","message",…}`); frames up to MAX_MESSAGE_BYTES (1009 beyond). Keep-alive pings ' +
        `every STREAM_PING_INTERVAL. Close codes: ${CLOSE_CODES.slowConsumer} slow consumer (reconnect with your cursor), ` +
        `${CLOSE_CODES.missedPing} missed ping, ${CLOSE_CODES.tokenExpired} token expired (AUTH=jwt; reconnect with a new token), ` +
        `${CLOSE_CODES.internalError} internal error, 1001 server shutting down. With AUTH=jwt the token may be sent as ?access_token= ` +
        '(browsers cannot set headers on a WebSocket), and only the client itself may open its stream. ' +
        'A browser page may open a stream from the service\'s own origin or one listed in CORS_ORIGINS (403 `forbidden_origin` otherwise); ' +
        'clients that send no Origin header are not browsers and are not checked.',
      tags,
      params: ClientParamsSchema,
      querystring: StreamQuerySchema,
      // Answers before the upgrade: a bad query or a foreign page (no store is read), or a
      // connection beyond the connection limits (429, 503).
      response: { 400: errorResponse(400), 401: errorResponse(401), 403: errorResponse(403), 426: errorResponse(426), 429: errorResponse(429), 503: errorResponse(503) },
    },
    // A plain GET (no WebSocket handshake).
    handler: async (request, reply) => {
      void reply.header('upgrade', 'websocket')
      throw new ServiceError('upgrade_required', `GET ${request.url.split('?')[0]} is a WebSocket stream: open it with a WebSocket client (Upgrade: websocket)`)
    },
    wsHandler: (socket, request) => {
      const served = serveStream(socket, request.raw.socket, service, request.params.client, request.query.after, stream, request.log)
      if (request.caller) closeAtExpiry(socket, request.caller.expiresAt)
      streams.add(served)
      void served.closed.then(() => streams.delete(served))
    },
  })
  // On shutdown the sockets are told 1001 first (preClose); here, before the store closes, every
  // stream stops reading from it and finishes the frames it is answering.
  app.addHook('onClose', async () => {
    await Promise.all([...streams].map((s) => s.stop()))
  })

  app.get('/clients/:client/groups', {
    schema: {
      summary: 'List the groups a client is a member of, a page at a time',
      description: 'In code point order; when `next_after` is in the reply, more follow: ask again with `after` set to it. ' +
        'A client that lost its state finds here the groups to rejoin (by an external commit, from each group\'s GroupInfo).',
      tags,
      params: ClientParamsSchema,
      querystring: ClientGroupsQuerySchema,
      response: { 200: ClientGroupsReplySchema, ...errorResponses(400, 403) },
    },
  }, async (request) => {
    const { client } = request.params
    access.self(request.caller, client, 'list its groups')
    return clientGroupsView(client, await service.listClientGroups(client, { after: request.query.after, limit: request.query.limit }))
  })

  app.delete('/clients/:client', {
    schema: {
      summary: 'Delete a client: everything the service keeps for it',
      description: 'One atomic step: the client leaves every group it is a member of (the groups stay, with the other members), ' +
        'its KeyPackages are deleted (a KeyPackage of it already handed out routes no Welcome any more: a commit that adds it with one is refused), ' +
        'and its queued deliveries and Welcomes are dropped. Messages it sent stay in their groups\' logs (the groups\' history, encrypted). ' +
        'Its queue\'s seqs go on from where they were, should the id receive anything again. ' +
        'Open streams of the client stay open and get nothing more. A client with nothing left answers zeros (a retry is safe).',
      tags,
      params: ClientParamsSchema,
      response: { 200: ClientDeletedReplySchema, ...errorResponses(400, 403) },
    },
  }, async (request) => {
    const { client } = request.params
    access.self(request.caller, client, 'delete it')
    return clientDeletedView(client, await service.deleteClient(client))
  })

  app.get('/clients/:client/welcomes', {
    schema: {
      summary: 'Read the Welcomes routed to a client, after a seq of its inbox',
      tags,
      params: ClientParamsSchema,
      querystring: PageQuerySchema,
      response: { 200: WelcomesReplySchema, ...errorResponses(400, 403) },
    },
  }, async (request) => {
    const { client } = request.params
    access.self(request.caller, client, 'read its Welcomes')
    const welcomes = await service.readWelcomes(client, request.query.after, request.query.limit)
    return { client_id: client, welcomes: welcomes.map((w) => welcomeView(w, toBase64)) }
  })
}
