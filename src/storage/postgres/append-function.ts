/**
 * append_message, created by migration 4 (migrations.ts): appendMessage's steps, which the
 * store used to send one by one while it held the group's row lock (about ten round trips), run
 * by the server in one call (append.ts). In READ COMMITTED every statement of a VOLATILE
 * function takes a fresh snapshot, so all that follows the lock sees what committed before it,
 * as the separate statements did. Retention follows the rule of queues.ts and welcomes.ts
 * (ENFORCE). This is released migration text: never edit it; to change the function, add a
 * version that runs CREATE OR REPLACE FUNCTION.
 */
export const APPEND_FUNCTION = `
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
        DELETE FROM deliveries d WHERE d.client_id = v_client AND d.seq <= v_through;
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
`

/**
 * append_messages, created by migration 5: several appends to one group in one call, one after
 * the other in the given order, each exactly as append_message (the first takes the group's row
 * lock, the others find it held), all in the caller's one transaction. The appends that waited
 * for the group while one was in flight take one round trip and one commit together (append.ts).
 * Only plain appends come here: no GroupInfo, no Welcome. Released migration text: never edit it.
 */
export const APPEND_BATCH_FUNCTION = `
  CREATE FUNCTION append_messages(
    p_group_id text, p_sender_ids text[], p_message_types text[], p_data bytea[], p_received_at bigint[],
    p_message_epochs bigint[], p_content_types text[],
    p_must_be_member boolean[], p_expected_epochs bigint[], p_advance boolean[],
    -- Each append's idempotency keys: at most a first and a second (NULL when it has fewer).
    p_first_keys text[], p_second_keys text[], p_keys_since bigint[], p_key_purge_batch integer,
    p_max_messages integer, p_keep_since bigint[]
  ) RETURNS TABLE (n integer, outcome text, seq bigint, epoch bigint, message_type text, message_to text[])
  LANGUAGE plpgsql VOLATILE AS $fn$
  #variable_conflict use_column
  BEGIN
    FOR i IN 1 .. cardinality(p_sender_ids) LOOP
      RETURN QUERY SELECT i, a.outcome, a.seq, a.epoch, a.message_type, a.message_to FROM append_message(
        p_group_id, p_sender_ids[i], p_message_types[i], p_data[i], p_received_at[i],
        p_message_epochs[i], p_content_types[i],
        p_must_be_member[i], p_expected_epochs[i], p_advance[i],
        array_remove(ARRAY[p_first_keys[i], p_second_keys[i]], NULL), p_keys_since[i], p_key_purge_batch,
        false, NULL, NULL, NULL, NULL,
        '{}'::text[], NULL,
        p_max_messages, p_keep_since[i]) AS a;
    END LOOP;
  END
  $fn$;
`

/** The fragment of APPEND_FUNCTION that queues a message's deliveries with their own copy of its bytes. */
const DELIVERY_BYTES = `p_message_epoch, p_content_type, p_data, p_received_at
        FROM counters c JOIN wanted w ON w.id = c.client_id WHERE w.is_message`

/**
 * append_message as migration 8 replaces it: the same steps, except that a message's
 * deliveries keep no copy of its bytes (data NULL; a group of 100 wrote them 101 times). Reads
 * take them from the group's log (queues.ts), and deleting a group first copies them into the
 * deliveries still queued (groups.ts), which outlive it. Derived from the released text by
 * this one checked substitution, so the two versions cannot drift apart anywhere else.
 * Welcome deliveries keep their bytes: a Welcome is not in the log.
 */
export const APPEND_FUNCTION_SHARED_BYTES = (() => {
  const at = APPEND_FUNCTION.indexOf(DELIVERY_BYTES)
  if (at < 0 || APPEND_FUNCTION.indexOf(DELIVERY_BYTES, at + 1) >= 0) throw new Error('append_message: the delivery insert to change is not found once')
  return APPEND_FUNCTION
    .replace('CREATE FUNCTION append_message(', 'CREATE OR REPLACE FUNCTION append_message(')
    .replace(DELIVERY_BYTES, DELIVERY_BYTES.replace('p_data', 'NULL::bytea'))
})()
