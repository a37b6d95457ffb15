import { ServiceError } from '../errors.js'
import * as S from '../schemas/tcp.js'
import { op, type Operation, type OperationContext } from './operation.js'

/** Live delivery over TCP, the twin of GET /clients/{c}/stream and POST /clients/{c}/ack (documented in protocol.ts). */
export function streamOperations({ service, access }: OperationContext): Array<[string, Operation]> {
  return [
    op(S.SubscribeRequestSchema, 'subscribe', async (r, session) => {
      if (session.subscribedAs !== undefined) {
        throw new ServiceError('bad_request', `This connection is already subscribed as ${session.subscribedAs}; open another connection for another stream`)
      }
      access.self(session.caller, r.client_id, 'stream its queue')
      const after = r.after ?? 0
      session.stream(r.client_id, (sink) => service.subscribe(r.client_id, after, sink))
      const answer: S.SubscribedResponse = { type: 'Subscribed', client_id: r.client_id, after }
      return answer
    }),
    op(S.AckRequestSchema, 'ack', async (r, session) => {
      const subscribed = session.subscribedAs
      if (subscribed !== undefined && r.client_id !== undefined && r.client_id !== subscribed) {
        throw new ServiceError('bad_request', `This connection is subscribed as ${subscribed}, not ${r.client_id}`)
      }
      const clientId = r.client_id ?? subscribed
      if (clientId === undefined) throw new ServiceError('bad_request', 'Not subscribed: send Subscribe first, or name client_id')
      access.self(session.caller, clientId, 'acknowledge its deliveries')
      const result = await service.ack(clientId, r.up_to)
      const answer: S.AckResponse = { type: 'AckResponse', client_id: clientId, acked_up_to: result.ackedUpTo, remaining: result.remaining }
      return answer
    }),
  ]
}
