import type pg from 'pg'
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
    // The steps append.ts used to send one by one while it held the group's row lock (about ten
    // round trips), run by the server in one call. In READ COMMITTED every statement of a
    // VOLATILE function takes a fresh snapshot, so all that follows the lock sees what committed
    // before it, as the separate statements did. Retention follows the rule of queues.ts and
    // welcomes.ts (ENFORCE). To change the function, CREATE OR REPLACE it in a new version: a
    // released migration is never edited.
    sql: `
      CREATE FUNCTION append_message(
        p_group_id text, p_sender_id text, p_message_type text, p_data bytea, p_received_at bigint,
        p_message_epoch bigint, p_content_type text,
        -- AppendCondition: p_expected_epoch NULL means any epoch.
        p_must_be_member boolean, p_expected_epoch bigint, p_advance boolean,
        -- Idempotency keys (distinct, first preferred), the window's start, and how many expired
        -- keys of the group one append deletes at most.
        p_keys text[], p_keys_since bigint, p_key_purge_batch integer,
        -- AppendEffects: the GroupInfo (when p_group_info), the Welcome and its recipients (distinct).
        p_group_info boolean, p_info_epoch bigint, p_info_data bytea, p_ratchet_tree bytea, p_info_stored_at bigint,
        p_welcome_to text[], p_welcome bytea,
        -- Retention of the recipients' queues and inboxes.
        p_max_messages integer, p_keep_since bigint
      ) RETURNS TABLE (outcome text, seq bigint, epoch bigint, message_type text, message_to text[])
      LANGUAGE plpgsql VOLATILE AS $fn$
      #variable_conflict use_column
      DECLARE
        v_epoch bigint;
        v_seq bigint;
        v_members text[];
        v_message_to text[];
        v_key text;
        v_accepted_at bigint;
        v_client text;
        v_first bigint;
        v_through bigint;
      BEGIN
        -- Serializes every append, join and commit of the group across instances.
        SELECT g.epoch, g.next_seq INTO v_epoch, v_seq FROM groups g WHERE g.group_id = p_group_id FOR UPDATE;
        IF NOT FOUND THEN
          outcome := 'no_group';
          RETURN NEXT;
          RETURN;
        END IF;

        -- A retry returns the original result, checked before the epoch. One primary key lookup
        -- per key, in the caller's order, and the window checked here: a condition on
        -- accepted_at in the query could steer the plan to the age index, which holds every
        -- key of the window.
        FOREACH v_key IN ARRAY p_keys LOOP
          SELECT k.seq, k.epoch, k.message_type, k.accepted_at INTO seq, epoch, message_type, v_accepted_at
          FROM idempotency_keys k WHERE k.group_id = p_group_id AND k.key = v_key;
          IF FOUND AND v_accepted_at >= p_keys_since THEN
            outcome := 'duplicate';
            RETURN NEXT;
            RETURN;
          END IF;
        END LOOP;
        seq := NULL;
        epoch := NULL;
        message_type := NULL;

        v_members := ARRAY(SELECT m.client_id FROM group_members m WHERE m.group_id = p_group_id ORDER BY m.joined);
        IF p_must_be_member AND NOT (p_sender_id = ANY (v_members)) THEN
          outcome := 'not_member';
          RETURN NEXT;
          RETURN;
        END IF;
        IF p_expected_epoch IS NOT NULL AND p_expected_epoch <> v_epoch THEN
          outcome := 'stale_epoch';
          epoch := v_epoch;
          RETURN NEXT;
          RETURN;
        END IF;

        INSERT INTO messages (group_id, seq, sender_id, message_type, data, received_at, epoch, content_type)
        VALUES (p_group_id, v_seq, p_sender_id, p_message_type, p_data, p_received_at, p_message_epoch, p_content_type);
        v_epoch := v_epoch + p_advance::integer;
        UPDATE groups g SET next_seq = v_seq + 1, epoch = v_epoch,
          group_info_epoch = CASE WHEN p_group_info THEN p_info_epoch ELSE g.group_info_epoch END,
          group_info = CASE WHEN p_group_info THEN p_info_data ELSE g.group_info END,
          ratchet_tree = CASE WHEN p_group_info THEN p_ratchet_tree ELSE g.ratchet_tree END,
          group_info_stored_at = CASE WHEN p_group_info THEN p_info_stored_at ELSE g.group_info_stored_at END
        WHERE g.group_id = p_group_id;

        -- Every member at the moment of acceptance gets it, except its sender; Welcome recipients
        -- join after it and get the Welcome instead (RFC 9420 §14: Welcome only with its Commit).
        v_message_to := array_remove(v_members, p_sender_id);
        IF cardinality(p_welcome_to) > 0 THEN
          INSERT INTO group_members (group_id, client_id) SELECT p_group_id, unnest(p_welcome_to) ON CONFLICT DO NOTHING;
        END IF;

        IF cardinality(v_message_to) + cardinality(p_welcome_to) > 0 THEN
          -- The counters of all the recipients' queues move in one upsert that visits the rows in
          -- client id order: concurrent appends to groups that share members take the row locks
          -- in the same order, so they cannot deadlock, and each client's seqs stay gap-free. A
          -- client that gets both has the message first, then the Welcome.
          WITH wanted AS (
            SELECT w.id, bool_or(w.is_message) AS is_message, bool_or(NOT w.is_message) AS is_welcome
            FROM (SELECT unnest(v_message_to) AS id, true AS is_message UNION ALL SELECT unnest(p_welcome_to), false) AS w
            GROUP BY w.id
          ), counters AS (
            INSERT INTO client_queues AS q (client_id, last_seq, last_welcome)
            SELECT w.id, w.is_message::integer + w.is_welcome::integer, w.is_welcome::integer FROM wanted w ORDER BY w.id COLLATE "C"
            ON CONFLICT (client_id) DO UPDATE SET last_seq = q.last_seq + EXCLUDED.last_seq, last_welcome = q.last_welcome + EXCLUDED.last_welcome
            RETURNING q.client_id, q.last_seq, q.last_welcome
          ), queued AS (
            INSERT INTO deliveries (client_id, seq, group_id, group_seq, sender_id, kind, message_type, epoch, content_type, data, received_at)
            SELECT c.client_id, c.last_seq - w.is_welcome::integer, p_group_id, v_seq, p_sender_id, 'message', p_message_type,
              p_message_epoch, p_content_type, p_data, p_received_at
            FROM counters c JOIN wanted w ON w.id = c.client_id WHERE w.is_message
            UNION ALL
            SELECT c.client_id, c.last_seq, p_group_id, v_seq, p_sender_id, 'welcome', 'Welcome', NULL, 'welcome', p_welcome, p_received_at
            FROM counters c JOIN wanted w ON w.id = c.client_id WHERE w.is_welcome
          )
          INSERT INTO welcomes (client_id, seq, group_id, sender_id, data, received_at)
          SELECT c.client_id, c.last_welcome, p_group_id, p_sender_id, p_welcome, p_received_at
          FROM counters c JOIN wanted w ON w.id = c.client_id WHERE w.is_welcome;

          -- Retention of the recipients' Welcome inboxes and queues, as welcomes.ts and queues.ts
          -- ENFORCE have it: drop the oldest beyond p_max_messages, then while the head is older
          -- than p_keep_since. Where something goes, one client at a time by its key range: a
          -- plan this function caches while the tables are small must not become a join that
          -- reads every delivery once they are large.
          IF cardinality(p_welcome_to) > 0 THEN
            FOR v_client, v_first, v_through IN
              SELECT q.client_id, q.first_welcome, COALESCE((
                SELECT min(w.seq) FROM welcomes w
                WHERE w.client_id = q.client_id AND w.seq > GREATEST(q.last_welcome - p_max_messages, q.first_welcome - 1) AND w.received_at >= p_keep_since
              ), q.last_welcome + 1) - 1
              FROM client_queues q WHERE q.client_id = ANY (p_welcome_to)
            LOOP
              CONTINUE WHEN v_through < v_first;
              DELETE FROM welcomes w WHERE w.client_id = v_client AND w.seq BETWEEN v_first AND v_through;
              UPDATE client_queues q SET first_welcome = v_through + 1 WHERE q.client_id = v_client;
            END LOOP;
          END IF;
          FOR v_client, v_first, v_through IN
            SELECT q.client_id, q.first_seq, COALESCE((
              SELECT min(d.seq) FROM deliveries d
              WHERE d.client_id = q.client_id AND d.seq > GREATEST(q.last_seq - p_max_messages, q.first_seq - 1) AND d.received_at >= p_keep_since
            ), q.last_seq + 1) - 1
            FROM client_queues q WHERE q.client_id = ANY (v_message_to || p_welcome_to)
          LOOP
            CONTINUE WHEN v_through < v_first;
            -- Nothing below first_seq is left: acks and retention delete up to where it moves.
            DELETE FROM deliveries d WHERE d.client_id = v_client AND d.seq BETWEEN v_first AND v_through;
            -- What is dropped before it was acknowledged is remembered (the gap).
            UPDATE client_queues q SET first_seq = v_through + 1,
              dropped_up_to = CASE WHEN v_through > q.acked_up_to THEN GREATEST(q.dropped_up_to, v_through) ELSE q.dropped_up_to END
            WHERE q.client_id = v_client;
          END LOOP;
        END IF;

        IF cardinality(p_keys) > 0 THEN
          -- Expired keys never match (accepted_at above); deleting a bounded batch of them per
          -- append keeps the table near the live window without a long delete in the hot path.
          -- Each by its primary key: no cached plan can turn this into a scan of the group's keys.
          FOR v_key IN
            SELECT o.key FROM idempotency_keys o WHERE o.group_id = p_group_id AND o.accepted_at < p_keys_since
            ORDER BY o.accepted_at LIMIT p_key_purge_batch
          LOOP
            DELETE FROM idempotency_keys k WHERE k.group_id = p_group_id AND k.key = v_key;
          END LOOP;
          INSERT INTO idempotency_keys AS k (group_id, key, seq, epoch, message_type, accepted_at)
          SELECT p_group_id, unnest(p_keys), v_seq, v_epoch, p_message_type, p_received_at
          ON CONFLICT (group_id, key) DO UPDATE SET seq = EXCLUDED.seq, epoch = EXCLUDED.epoch,
            message_type = EXCLUDED.message_type, accepted_at = EXCLUDED.accepted_at;
        END IF;

        outcome := 'appended';
        seq := v_seq;
        epoch := v_epoch;
        message_type := p_message_type;
        message_to := v_message_to;
        RETURN NEXT;
      END
      $fn$;
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
