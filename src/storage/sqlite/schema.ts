/**
 * Versioned schema changes for the SQLite store, applied in order at open (see user_version).
 * The same tables as PostgreSQL (postgres/migrations.ts): ids are TEXT, bytes BLOB, numbers INTEGER.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE key_packages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL,
    ref TEXT NOT NULL,
    data BLOB NOT NULL,
    ciphersuite INTEGER,
    last_resort INTEGER NOT NULL,
    legacy INTEGER NOT NULL,
    not_after INTEGER,
    stored_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX key_packages_ref ON key_packages (client_id, ref) WHERE NOT legacy;
  CREATE UNIQUE INDEX key_packages_legacy ON key_packages (client_id) WHERE legacy;
  CREATE INDEX key_packages_order ON key_packages (client_id, id);
  CREATE TABLE handed_out_refs (ref TEXT PRIMARY KEY, client_id TEXT NOT NULL);
  CREATE TABLE groups (
    group_id TEXT PRIMARY KEY,
    creator_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    group_info_epoch INTEGER,
    group_info BLOB,
    ratchet_tree BLOB,
    group_info_stored_at INTEGER
  );
  -- Join order is the rowid order: a member who leaves and rejoins gets a new, larger rowid.
  CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    UNIQUE (group_id, client_id)
  );
  CREATE TABLE messages (
    group_id TEXT NOT NULL REFERENCES groups ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    sender_id TEXT NOT NULL,
    message_type TEXT NOT NULL,
    data BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    epoch INTEGER,
    content_type TEXT,
    PRIMARY KEY (group_id, seq)
  );
  CREATE TABLE idempotency_keys (
    group_id TEXT NOT NULL REFERENCES groups ON DELETE CASCADE,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    message_type TEXT NOT NULL,
    accepted_at INTEGER NOT NULL,
    PRIMARY KEY (group_id, key)
  );
  CREATE TABLE client_queues (
    client_id TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL DEFAULT 0,
    first_seq INTEGER NOT NULL DEFAULT 1,
    acked_up_to INTEGER NOT NULL DEFAULT 0,
    dropped_up_to INTEGER NOT NULL DEFAULT 0,
    last_welcome INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE deliveries (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    group_seq INTEGER NOT NULL,
    sender_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_type TEXT NOT NULL,
    epoch INTEGER,
    content_type TEXT,
    data BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, seq)
  );
  CREATE TABLE welcomes (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    data BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, seq)
  );
  `,
  // A handed-out ref routes Welcomes only until its KeyPackage expires (handed-out-refs.ts). Refs
  // from before this version have no known lifetime: they get the default QUEUE_MAX_AGE (7 days)
  // from now. (SQLite adds a NOT NULL column only with a constant default; every insert sets it.)
  `
  ALTER TABLE handed_out_refs ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
  UPDATE handed_out_refs SET expires_at = CAST(strftime('%s', 'now') AS INTEGER) + 604800;
  CREATE INDEX handed_out_refs_expiry ON handed_out_refs (expires_at);
  -- The first seq a client's Welcome inbox still keeps (retention drops from the front).
  ALTER TABLE client_queues ADD COLUMN first_welcome INTEGER NOT NULL DEFAULT 1;
  `,
  // A claim deletes a bounded batch of the client's expired packages, soonest expired first, and
  // takes the oldest consumable one, of one ciphersuite when asked: neither reads the whole pool.
  `
  CREATE INDEX key_packages_expiry ON key_packages (client_id, not_after) WHERE NOT legacy AND not_after IS NOT NULL;
  CREATE INDEX key_packages_pick ON key_packages (client_id, ciphersuite, id) WHERE NOT legacy AND NOT last_resort;
  `,
  // The package a claim keeps (last-resort, else legacy) without reading the one-time ones: a
  // claim beyond KEY_PACKAGE_CLAIM_LIMIT asks for nothing else, however large the pool.
  `
  CREATE INDEX key_packages_kept ON key_packages (client_id, legacy, id) WHERE last_resort OR legacy;
  `,
  // A message's deliveries keep no copy of its bytes (data NULL): reads take them from messages,
  // and deleting a group first copies them into its deliveries still queued (sqlite-store.ts).
  // SQLite drops a NOT NULL only by rebuilding the table.
  `
  CREATE TABLE deliveries_shared (
    client_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    group_id TEXT NOT NULL,
    group_seq INTEGER NOT NULL,
    sender_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_type TEXT NOT NULL,
    epoch INTEGER,
    content_type TEXT,
    data BLOB,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, seq)
  );
  INSERT INTO deliveries_shared (client_id, seq, group_id, group_seq, sender_id, kind, message_type, epoch, content_type, data, received_at)
    SELECT client_id, seq, group_id, group_seq, sender_id, kind, message_type, epoch, content_type, data, received_at FROM deliveries;
  DROP TABLE deliveries;
  ALTER TABLE deliveries_shared RENAME TO deliveries;
  CREATE INDEX deliveries_shared_bytes ON deliveries (group_id, group_seq) WHERE data IS NULL;
  `,
  // GET /clients/{c}/groups reads a client's groups in id order from its cursor on, and deleting
  // a client finds its memberships and the refs handed out for it, without a scan.
  `
  CREATE INDEX group_members_client ON group_members (client_id, group_id);
  CREATE INDEX handed_out_refs_client ON handed_out_refs (client_id);
  `,
  // GROUP_LOG_MAX_AGE: the oldest messages of all groups, found without reading the rest.
  `
  CREATE INDEX messages_received ON messages (received_at);
  `,
]
