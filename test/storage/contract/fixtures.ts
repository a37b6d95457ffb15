import type { TestContext } from 'node:test'
import { DEFAULT_STORE_OPTIONS, type StoreOptions } from '../../../src/storage/options.js'
import type { KeyPackageRecord, NewMessage, Store, StoredMessage } from '../../../src/storage/store.js'

/** Builds a fresh, empty store with the given policies; the suite closes it after each test. */
export type StoreFactory = (options: StoreOptions) => Promise<Store>

export const T0 = 1_700_000_000_000

export async function openStore(t: TestContext, factory: StoreFactory, options: Partial<StoreOptions> = {}): Promise<Store> {
  const store = await factory({ ...DEFAULT_STORE_OPTIONS, ...options })
  t.after(() => store.close())
  return store
}

export const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
export const text = (data: Uint8Array): string => new TextDecoder().decode(data)

let refCounter = 0

export function keyPackage(overrides: Partial<KeyPackageRecord> & { label?: string } = {}): KeyPackageRecord {
  const { label, ...rest } = overrides
  const ref = rest.ref ?? `ref-${++refCounter}`.padEnd(16, '0')
  return {
    ref,
    data: bytes(label ?? ref),
    ciphersuite: 1,
    lastResort: false,
    legacy: false,
    notAfter: null,
    storedAt: T0,
    ...rest,
  }
}

export function message(senderId: string, label: string, overrides: Partial<NewMessage> = {}): NewMessage {
  return { senderId, messageType: 'Application', data: bytes(label), receivedAt: T0, epoch: null, contentType: null, ...overrides }
}

/** A group with its members, creator first. */
export async function groupWith(store: Store, groupId: string, members: readonly string[], epoch = 0): Promise<void> {
  const created = await store.createGroup({ groupId, creatorId: members[0]!, epoch, createdAt: T0 })
  if (!created) throw new Error(`group ${groupId} exists`)
  for (const member of members.slice(1)) await store.addMember(groupId, member)
}

export const ANY_MEMBER = { senderMustBeMember: false } as const
export const MEMBER = { senderMustBeMember: true } as const

/** Ids a store must treat as plain strings (no prototype keys, no SQL or LIKE meaning). */
export const HOSTILE_IDS = ['__proto__', 'constructor', 'hasOwnProperty', "o'brien", 'a%_b', 'back\\slash', 'x"; DROP TABLE groups; --', 'ünï 😀', ' '] as const

/** The messages of a page of the group's log (undefined for a group that does not exist). */
export async function logOf(store: Store, groupId: string, after: number, limit: number, maxBytes?: number): Promise<StoredMessage[] | undefined> {
  return (await store.readMessages(groupId, after, limit, maxBytes))?.messages
}
