-- Instance settings (a key per name, JSON values).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: get_setting
SELECT value FROM instance_setting WHERE name = %(name)s;

-- name: init_setting
-- Store a setting unless one exists, and return the stored value (the first writer wins).
WITH ins AS (
    INSERT INTO instance_setting (name, value) VALUES (%(name)s, %(value)s)
    ON CONFLICT (name) DO NOTHING
    RETURNING value
)
SELECT value FROM ins
UNION ALL
SELECT value FROM instance_setting WHERE name = %(name)s
LIMIT 1;

-- name: ping
-- Whether the database answers.
SELECT 1;
