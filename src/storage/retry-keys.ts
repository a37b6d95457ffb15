import { hash } from 'node:crypto'
import type { NewMessage, RetryIdentity } from './store.js'

/**
 * The idempotency keys of a message, for the stores that keep them as text in a table
 * (PostgreSQL, SQLite): one per way a retry can match, each naming the sender, so a key is
 * never shared by two senders.
 *
 * - `bytes:<sender>:<SHA-256 of the bytes, base64>`: the hash is 44 characters without a
 *   colon, so the sender is everything before the last colon.
 * - `key:<sender>:<Idempotency-Key>`, as before, for a sender without a colon (the sender is
 *   what comes before the first one). A sender with one gets `key#<length of sender>:…`
 *   instead, or sender `a:b` with key `c` would share `key:a:b:c` with sender `a` and key
 *   `b:c`, and could pass off the other's message as a retry of its own.
 */
export function retryKeys(message: NewMessage, retry: RetryIdentity | undefined): string[] {
  const keys: string[] = []
  if (!retry) return keys
  const sender = message.senderId
  if (retry.sameBytes) keys.push(`bytes:${sender}:${hash('sha256', message.data, 'base64')}`)
  if (retry.key !== undefined) keys.push(sender.includes(':') ? `key#${sender.length}:${sender}:${retry.key}` : `key:${sender}:${retry.key}`)
  return keys
}
