import os from 'node:os'
import { recreateGroup } from '../lib/http.js'
import { figure } from '../lib/result.js'
import { interleave } from '../lib/rounds.js'
import { POSTGRES_NOTE, withServices, type Scenario } from './context.js'
import { relayMessage, relaySide } from './relay-rest.js'

/**
 * Two service processes on one PostgreSQL database (A) vs one (B), relaying over REST into
 * the same group: A splits the 100 connections over both instances, B sends all 100 to the
 * first while the second stays up, idle. Every acknowledged message must be stored, whichever
 * instance took it. No target: it shows that the shared store works under load and what a
 * second instance costs or gains on this machine.
 */
export const relayRestInstances: Scenario = {
  key: 'relay-rest-pg-x2',
  title: 'relay over REST, service on PostgreSQL: two instances on one database vs one, 100 connections in all',
  store: 'postgres',
  async run(ctx) {
    const relay = await relayMessage()
    return withServices(ctx, 2, async ([first, second]) => {
      await recreateGroup(first!.httpUrl, relay.groupId, 'alice')
      const rounds = await interleave(ctx.settings, relaySide(ctx, [first!.httpUrl, second!.httpUrl], relay), relaySide(ctx, [first!.httpUrl], relay), ctx.log)
      return {
        key: this.key, title: this.title, a: 'two instances, 50 connections each', b: 'one instance, 100 connections', available: true,
        figures: [
          figure('req/s', 'req/s', rounds.a.rps!, rounds.b.rps!),
          figure('p99 latency', 'ms', rounds.a.p99!, rounds.b.p99!),
        ],
        notes: [
          'one group for both sides: every append of either instance takes the same group row lock (seqs stay gap-free across instances); A\'s p99 is the higher of its two load jobs\'',
          `every acknowledged message counted in the group after each round; ${POSTGRES_NOTE}`,
          `the load generator, PostgreSQL and both instances share this machine's ${os.availableParallelism()} cores: a second instance adds no CPU here, so A/B shows what the split costs more than what it could gain on separate machines`,
        ],
      }
    }, { store: 'postgres' })
  },
}
