import type pg from 'pg'
import { APPEND_BATCH_FUNCTION, APPEND_FUNCTION, APPEND_FUNCTION_SHARED_BYTES } from './append-function.js'
import { RATE_COUNTS_TABLE } from './rate-limiter.js'
import { quoteIdent, transaction } from './database.js'

/**
 * Versioned schema changes, applied in order at start. Never edit a released one: add the
 * next version. Ids are text (any string a client sends); bytes are bytea, exactly as
 * uploaded; epochs, seqs and times are bigint.
 */
export const MIGRATIONS: readonly { readonly version: number; readonly name: string; readonly sql: string }[] = [
  {
    version: 1,
    name: 'key packages, groups, messages, queues',
    sql: `
      CREATE TABLE key_packages (
        id bigserial PRIMARY KEY,
        client_id text NOT NULL,
        ref text NOT NULL,
        data bytea NOT NULL,
        ciphersuite integer,
        last_resort boolean NOT NULL,
        legacy boolean NOT NULL,
        not_after bigint,
        stored_at bigint NOT NULL
      );
      CREATE UNIQUE INDEX key_packages_ref ON key_packages (client_id, ref) WHERE NOT legacy;
      CREATE UNIQUE INDEX key_packages_legacy ON key_packages (client_id) WHERE legacy;
      CREATE INDEX key_packages_order ON key_packages (client_id, id);
      -- KeyPackageRef -> the client it was handed out for (Welcome routing).
      CREATE TABLE handed_out_refs (ref text PRIMARY KEY, client_id text NOT NULL);

      CREATE TABLE groups (
        group_id text PRIMARY KEY,
        creator_id text NOT NULL,
        epoch bigint NOT NULL,
        next_seq bigint NOT NULL DEFAULT 1,
        created_at bigint NOT NULL,
        group_info_epoch bigint,
        group_info bytea,
        ratchet_tree bytea,
        group_info_stored_at bigint
      );
      CREATE TABLE group_members (
        group_id text NOT NULL REFERENCES groups ON DELETE CASCADE,
        client_id text NOT NULL,
        joined bigserial NOT NULL,
        PRIMARY KEY (group_id, client_id)
      );
      CREATE TABLE messages (
        group_id text NOT NULL REFERENCES groups ON DELETE CASCADE,
        seq bigint NOT NULL,
        sender_id text NOT NULL,
        message_type text NOT NULL,
        data bytea NOT NULL,
        received_at bigint NOT NULL,
        epoch bigint,
        content_type text,
        PRIMARY KEY (group_id, seq)
      );
      CREATE TABLE idempotency_keys (
        group_id text NOT NULL REFERENCES groups ON DELETE CASCADE,
        key text NOT NULL,
        seq bigint NOT NULL,
        epoch bigint NOT NULL,
        message_type text NOT NULL,
        accepted_at bigint NOT NULL,
        PRIMARY KEY (group_id, key)
      );
      CREATE INDEX idempotency_keys_age ON idempotency_keys (group_id, accepted_at);

      -- One row per client: the counters of its delivery queue and Welcome inbox. Appends lock
      -- these rows (in client id order) so that per-client seqs stay gap-free.
      CREATE TABLE client_queues (
        client_id text PRIMARY KEY,
        last_seq bigint NOT NULL DEFAULT 0,
        first_seq bigint NOT NULL DEFAULT 1,
        acked_up_to bigint NOT NULL DEFAULT 0,
        dropped_up_to bigint NOT NULL DEFAULT 0,
        last_welcome bigint NOT NULL DEFAULT 0
      );
      -- Deliveries keep their own copy of the bytes: they outlive a deleted group, as in memory.
      CREATE TABLE deliveries (
        client_id text NOT NULL,
        seq bigint NOT NULL,
        group_id text NOT NULL,
        group_seq bigint NOT NULL,
        sender_id text NOT NULL,
        kind text NOT NULL,
        message_type text NOT NULL,
        epoch bigint,
        content_type text,
        data bytea NOT NULL,
        received_at bigint NOT NULL,
        PRIMARY KEY (client_id, seq)
      );
      CREATE TABLE welcomes (
        client_id text NOT NULL,
        seq bigint NOT NULL,
        group_id text NOT NULL,
        sender_id text NOT NULL,
        data bytea NOT NULL,
        received_at bigint NOT NULL,
        PRIMARY KEY (client_id, seq)
      );
    `,
  },
  {
    version: 2,
    name: 'handed-out refs expire; Welcome inboxes have retention',
    sql: `
      -- A handed-out ref routes Welcomes only until its KeyPackage expires (handed-out-refs.ts).
      -- Refs from before this version have no known lifetime: they get the default QUEUE_MAX_AGE
      -- (7 days) from now, so Welcomes in flight still route, and are forgotten after it. now() is
      -- stable, so the default is computed once and the table is not rewritten.
      ALTER TABLE handed_out_refs ADD COLUMN expires_at bigint NOT NULL DEFAULT (extract(epoch FROM now())::bigint + 604800);
      ALTER TABLE handed_out_refs ALTER COLUMN expires_at DROP DEFAULT;
      CREATE INDEX handed_out_refs_expiry ON handed_out_refs (expires_at);
      -- The first seq a client's Welcome inbox still keeps (retention drops from the front).
      ALTER TABLE client_queues ADD COLUMN first_welcome bigint NOT NULL DEFAULT 1;
    `,
  },
  {
    version: 3,
    name: 'key package claims cost the same whatever the pool size',
    sql: `
      -- A claim deletes a bounded batch of the client's expired packages, soonest expired first
      -- (key-packages.ts): this index finds them without reading the client's whole pool.
      CREATE INDEX key_packages_expiry ON key_packages (client_id, not_after) WHERE NOT legacy AND not_after IS NOT NULL;
      -- The oldest consumable package of one ciphersuite, without walking the other suites.
      CREATE INDEX key_packages_pick ON key_packages (client_id, ciphersuite, id) WHERE NOT legacy AND NOT last_resort;
    `,
  },
  {
    version: 4,
    name: 'appendMessage in one round trip',
    sql: APPEND_FUNCTION,
  },
  {
    version: 5,
    name: 'appends waiting for one group in one call',
    sql: APPEND_BATCH_FUNCTION,
  },
  {
    version: 6,
    name: 'key package claims counted across instances',
    sql: `
      -- KEY_PACKAGE_CLAIM_LIMIT (claim-limiter.ts): a row per client whose KeyPackages were claimed
      -- in a window not yet swept. The columns are those rate-limiter-flexible's RateLimiterPostgres
      -- reads and writes: the key ('claims:' and the client id), the claims counted in the window,
      -- and when the window ends (unix ms). Client ids may be 256 characters: the key is text.
      CREATE TABLE ${RATE_COUNTS_TABLE} (
        key text PRIMARY KEY,
        points integer NOT NULL DEFAULT 0,
        expire bigint
      );
      -- The sweep finds ended windows without reading the others.
      CREATE INDEX ${RATE_COUNTS_TABLE}_expire ON ${RATE_COUNTS_TABLE} (expire);
    `,
  },
  {
    version: 7,
    name: 'the kept key package found without reading the pool',
    sql: `
      -- The package a claim keeps (last-resort, else legacy) without reading the one-time ones: a
      -- claim beyond KEY_PACKAGE_CLAIM_LIMIT asks for nothing else, however large the pool.
      CREATE INDEX key_packages_kept ON key_packages (client_id, legacy, id) WHERE last_resort OR legacy;
    `,
  },
  {
    version: 8,
    name: 'deliveries of a message share its bytes with the log',
    sql: `
      -- A message's deliveries read its bytes from messages (queues.ts) instead of keeping a copy
      -- each; rows from before keep theirs. Deleting a group copies the bytes into its deliveries
      -- still queued (groups.ts), found by this index.
      ALTER TABLE deliveries ALTER COLUMN data DROP NOT NULL;
      CREATE INDEX deliveries_shared_bytes ON deliveries (group_id, group_seq) WHERE data IS NULL;
      ${APPEND_FUNCTION_SHARED_BYTES}
    `,
  },
  {
    version: 9,
    name: 'clients with key packages listed in pages, in byte order',
    sql: `
      -- GET /key-packages?after=…&limit=…: ids in "C" order (UTF-8 bytes, as memory and SQLite
      -- order them), read from the cursor on instead of sorted whole.
      CREATE INDEX key_packages_client_bytes ON key_packages ((client_id COLLATE "C"));
    `,
  },
  {
    version: 10,
    name: "a client's groups listed in pages; deleting a client",
    sql: `
      -- GET /clients/{c}/groups: a client's groups in "C" order from the cursor on; deleting a
      -- client finds its memberships and the refs handed out for it (clients.ts) without a scan.
      CREATE INDEX group_members_client ON group_members (client_id, (group_id COLLATE "C"));
      CREATE INDEX handed_out_refs_client ON handed_out_refs (client_id);
    `,
  },
  {
    version: 11,
    name: 'the oldest messages found for GROUP_LOG_MAX_AGE',
    sql: `
      -- purgeGroupLogs (groups.ts) finds old messages of all groups by this index. BRIN: a few
      -- bytes per block of rows written about together, so appends hardly pay for it.
      CREATE INDEX messages_received ON messages USING brin (received_at);
    `,
  },
]

/** Any constant: every instance takes the same lock, so only one migrates at a time. */
const MIGRATION_LOCK = 0x6d6c7364

/**
 * Brings the schema up to date in one transaction under an advisory lock: when two instances
 * start at once, the second waits, then finds everything applied. Returns the versions applied.
 */
export async function migrate(pool: pg.Pool, schema: string | undefined): Promise<number[]> {
  return transaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    if (schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`)
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`)
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations')
    const applied = new Set(rows.map((r) => r.version))
    const done: number[] = []
    for (const migration of MIGRATIONS) {
      if (applied.has(migration.version)) continue
      await client.query(migration.sql)
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name])
      done.push(migration.version)
    }
    return done
  })
}
