import type { TokenVerifier } from '../auth/token-verifier.js'
import { ServiceError } from '../errors.js'
import * as S from '../schemas/tcp.js'
import { op, type Operation } from './operation.js'

/**
 * AUTH=jwt over TCP: `Authenticate {token}` binds the connection to the token's client, as the
 * REST door's Authorization header binds a request (documented in protocol.ts).
 */
export function authOperations(verifier: TokenVerifier | undefined): Array<[string, Operation]> {
  return [
    op(S.AuthenticateRequestSchema, 'authenticate', async (r, session) => {
      if (!verifier) throw new ServiceError('bad_request', 'This service runs without authentication (AUTH=none): no token is needed')
      const caller = await verifier.verify(r.token)
      if (session.caller !== null && session.caller.clientId !== caller.clientId) {
        throw new ServiceError('forbidden', `This connection is authenticated as ${session.caller.clientId}; open another connection for ${caller.clientId}`)
      }
      const answer: S.AuthenticatedResponse = { type: 'Authenticated', client_id: caller.clientId, expires_at: new Date(caller.expiresAt).toISOString() }
      session.authenticate(caller)
      return answer
    }),
  ]
}
