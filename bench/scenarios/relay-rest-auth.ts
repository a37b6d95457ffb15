import { randomBytes } from 'node:crypto'
import { SignJWT } from 'jose'
import { recreateGroup } from '../lib/http.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { withService, type Scenario } from './context.js'
import { relayMessage, relaySide } from './relay-rest.js'

/**
 * No target: what AUTH=jwt costs. relay-rest's load against two services at once, one with
 * bearer tokens (HS256; every request carries alice's token, as a client reuses its token) and
 * one without. The verified token is kept (TokenVerifier), so a request pays a Map lookup, not
 * jose's signature check (~140 µs on its own).
 */
export const relayRestAuth: Scenario = {
  key: 'relay-rest-auth',
  title: 'what bearer tokens cost: relay-rest on a service with AUTH=jwt (HS256, one token per client) against the same service without',
  store: 'memory',
  async run(ctx) {
    const relay = await relayMessage()
    const secret = randomBytes(32).toString('hex')
    const token = await new SignJWT({ sub: relay.senderId }).setExpirationTime('6h').setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret))
    const headers = { authorization: `Bearer ${token}` }
    return withService(ctx, (open) => withService(ctx, async (authed) => {
      await recreateGroup(open.httpUrl, relay.groupId, relay.senderId)
      await recreateGroup(authed.httpUrl, relay.groupId, relay.senderId, headers)
      const rounds = await interleave(ctx.settings, relaySide(ctx, [authed.httpUrl], relay, authed.pid, headers), relaySide(ctx, [open.httpUrl], relay, open.pid), ctx.log)
      return {
        key: this.key, title: this.title, a: 'service with AUTH=jwt', b: 'service with AUTH=none', available: true,
        figures: [
          figure('req/s', 'req/s', rounds.a.rps!, rounds.b.rps!),
          figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!),
          figure('server CPU per request', 'µs', rounds.a.cpuUs!, rounds.b.cpuUs!),
        ],
        notes: [
          'both sides are the service (memory store), each its own process, under the load of relay-rest; A also checks the token and that the sender is its subject',
        ],
      }
    }, { env: { AUTH: 'jwt', AUTH_JWT_SECRET: secret, TCP_ENABLED: 'false' } }))
  },
}
