-- Variables (plain and secret), the workspaces' data keys and the secrets jobs read.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: get_workspace_key
SELECT wrapped_key FROM workspace_key WHERE workspace_id = %(workspace_id)s;

-- name: insert_workspace_key
-- A first data key; a concurrent first use keeps the one stored first (then re-read).
INSERT INTO workspace_key (workspace_id, wrapped_key)
VALUES (%(workspace_id)s, %(wrapped_key)s)
ON CONFLICT (workspace_id) DO NOTHING;

-- name: list_variables
-- The variables the caller may read (gm_can_read), by path, optionally under a prefix.
SELECT workspace_id, path, value, is_secret, description, extra_perms, account, is_oauth
FROM variable
WHERE workspace_id = %(workspace_id)s
  AND (%(path_start)s::text IS NULL OR path LIKE %(path_start)s ESCAPE '\')
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY path
LIMIT %(limit)s OFFSET %(offset)s;

-- name: get_variable
SELECT workspace_id, path, value, is_secret, description, extra_perms, account, is_oauth
FROM variable
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: lock_variable
-- The variable an update or delete changes, locked until the transaction ends.
SELECT workspace_id, path, value, is_secret, description, extra_perms, account, is_oauth
FROM variable
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
FOR UPDATE;

-- name: insert_variable
-- A new variable; no row back when the path is taken.
INSERT INTO variable (workspace_id, path, value, is_secret, description, account, is_oauth,
                      created_by)
VALUES (%(workspace_id)s, %(path)s, %(value)s, %(is_secret)s, %(description)s, %(account)s,
        %(is_oauth)s, %(created_by)s)
ON CONFLICT (workspace_id, path) DO NOTHING
RETURNING path;

-- name: update_variable
-- Every column given (the caller merged the old values); a rename moves the row.
UPDATE variable
SET path = %(new_path)s, value = %(value)s, is_secret = %(is_secret)s,
    description = %(description)s, edited_at = now()
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: variable_path_taken
SELECT 1 FROM variable WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: delete_variable
DELETE FROM variable WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: record_job_secret_read
-- A job read this secret: its logs mask the value from now on.
INSERT INTO job_secret_read (job_id, path) VALUES (%(job_id)s, %(path)s)
ON CONFLICT DO NOTHING;

-- name: job_secrets_read
-- The secrets a job read (their stored ciphertext), for masking its logs.
SELECT v.path, v.value
FROM job_secret_read r
JOIN variable v ON v.workspace_id = %(workspace_id)s AND v.path = r.path
WHERE r.job_id = %(job_id)s AND v.is_secret;
