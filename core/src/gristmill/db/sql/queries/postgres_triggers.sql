-- The Postgres trigger (gristmill.triggers.postgres). The first query runs on Gristmill's own
-- database; the others on the user's database (the trigger's `postgresql` resource), over a
-- connection of the trigger's own.

-- name: pgtrig_job_exists
-- A change's job is started with an id made from the trigger, the change's commit LSN and
-- its place in the transaction: a change read again (after a restart, before the slot was
-- advanced) finds its job here and is not run twice.
SELECT EXISTS (SELECT 1 FROM job WHERE id = %(id)s);

-- name: pgtrig_wal_level
SELECT current_setting('wal_level');

-- name: pgtrig_schema_exists
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %(schema)s);

-- name: pgtrig_table_columns
-- The columns of an ordinary or partitioned table (no row: no such table).
SELECT c.oid, coalesce(array_agg(a.attname::text) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND c.relkind IN ('r', 'p')
GROUP BY c.oid;

-- name: pgtrig_publication
SELECT puballtables, obj_description(oid, 'pg_publication') AS comment
FROM pg_publication WHERE pubname = %(publication)s;

-- name: pgtrig_slot
SELECT plugin, slot_type, database, active_pid FROM pg_replication_slots WHERE slot_name = %(slot)s;

-- name: pgtrig_create_slot
SELECT pg_create_logical_replication_slot(%(slot)s, 'pgoutput');

-- name: pgtrig_drop_slot
SELECT pg_drop_replication_slot(%(slot)s);

-- name: pgtrig_current_lsn
SELECT pg_current_wal_lsn()::text;

-- name: pgtrig_peek
-- The slot's changes of the transactions committed before `upto_lsn`, at most about
-- `upto_n` messages (whole transactions), without consuming them: the slot moves only with
-- pgtrig_advance, once their jobs are committed.
SELECT lsn::text, data
FROM pg_logical_slot_peek_binary_changes(
    %(slot)s, %(upto_lsn)s::pg_lsn, %(upto_n)s,
    'proto_version', '1', 'publication_names', %(publication)s
);

-- name: pgtrig_advance
SELECT pg_replication_slot_advance(%(slot)s, %(lsn)s::pg_lsn);
