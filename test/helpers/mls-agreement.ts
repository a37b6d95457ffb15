import assert from 'node:assert/strict'
import { hex, type MlsTestClient } from './mls-client.js'

/** All clients are in the same epoch and agree on its authenticator and an exported secret (RFC 9420 §8.5, §8.7). */
export async function assertAgreement(clients: readonly MlsTestClient[], label: string): Promise<void> {
  const [first, ...rest] = clients
  if (!first) return
  const auth = hex(first.epochAuthenticator())
  const exported = hex(await first.exportSecret(label))
  for (const c of rest) {
    assert.equal(c.epoch, first.epoch, `${c.name} epoch`)
    assert.equal(hex(c.epochAuthenticator()), auth, `${c.name} epoch authenticator`)
    assert.equal(hex(await c.exportSecret(label)), exported, `${c.name} exporter secret`)
  }
}
