-- The schema migrations' own bookkeeping (see gristmill.db.migrations).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: migration_lock
-- Serialize migrations across every process starting at once against one database.
SELECT pg_advisory_lock(%(lock_id)s);

-- name: migration_unlock
SELECT pg_advisory_unlock(%(lock_id)s);

-- name: create_migration_table
CREATE TABLE IF NOT EXISTS gristmill_migration (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations
SELECT version FROM gristmill_migration;

-- name: record_migration
INSERT INTO gristmill_migration (version, name) VALUES (%(version)s, %(name)s);

-- name: gristmill_database_exists
-- Run against the cluster's `postgres` database by the embedded server's first start.
SELECT 1 FROM pg_database WHERE datname = 'gristmill';

-- name: create_gristmill_database
CREATE DATABASE gristmill;
