-- Git sync: the workspace setting and the deployments still to commit (gristmill.gitsync).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: git_sync_get
SELECT settings, last_error, last_error_at, last_commit, last_pushed_at, edited_by, edited_at,
       (SELECT count(*) FROM git_sync_pending p WHERE p.workspace_id = s.workspace_id) AS pending
FROM git_sync_setting s
WHERE workspace_id = %(workspace_id)s;

-- name: git_sync_set
INSERT INTO git_sync_setting (workspace_id, settings, edited_by)
VALUES (%(workspace_id)s, %(settings)s, %(edited_by)s)
ON CONFLICT (workspace_id) DO UPDATE
SET settings = EXCLUDED.settings, edited_by = EXCLUDED.edited_by, edited_at = now(),
    last_error = NULL, last_error_at = NULL;

-- name: git_sync_unset
-- Git sync off: the setting and the deployments not committed yet go.
WITH gone AS (DELETE FROM git_sync_pending WHERE workspace_id = %(workspace_id)s)
DELETE FROM git_sync_setting WHERE workspace_id = %(workspace_id)s;

-- name: git_sync_due_workspaces
-- The workspaces with a deployment to commit now.
SELECT DISTINCT workspace_id FROM git_sync_pending WHERE next_attempt_at <= now();

-- name: git_sync_try_lock
-- One process at a time commits a workspace's deployments (in order): this transaction's
-- lock, or false when another process holds it.
SELECT pg_try_advisory_xact_lock(hashtext('gristmill_git_sync'), hashtext(%(workspace_id)s));

-- name: git_sync_pending_list
-- A workspace's deployments to commit, oldest first; none while its oldest is not due (a
-- later one must not be committed before it).
SELECT id, kind, path, new_path, version, operation, username, attempts
FROM git_sync_pending
WHERE workspace_id = %(workspace_id)s
  AND (SELECT next_attempt_at FROM git_sync_pending
       WHERE workspace_id = %(workspace_id)s ORDER BY id LIMIT 1) <= now()
ORDER BY id
LIMIT %(limit)s;

-- name: git_sync_done
DELETE FROM git_sync_pending WHERE workspace_id = %(workspace_id)s AND id = ANY(%(ids)s);

-- name: git_sync_pushed
UPDATE git_sync_setting
SET last_commit = %(commit)s, last_pushed_at = now(), last_error = NULL, last_error_at = NULL
WHERE workspace_id = %(workspace_id)s;

-- name: git_sync_failed
-- A failed attempt: the workspace's deployments wait (doubling, at most 5 minutes) and the
-- error is kept on the setting and on the deployment at fault.
WITH later AS (
    UPDATE git_sync_pending
    SET attempts = attempts + 1,
        next_attempt_at = now() + least(interval '1 second' * power(2, attempts), interval '5 minutes'),
        last_error = CASE WHEN id = %(id)s THEN %(error)s ELSE last_error END
    WHERE workspace_id = %(workspace_id)s
)
UPDATE git_sync_setting SET last_error = %(error)s, last_error_at = now()
WHERE workspace_id = %(workspace_id)s;

-- name: git_sync_postpone
-- A script whose dependencies are being locked: its commit (and the later ones) waits for
-- the lock, without counting as a failure.
UPDATE git_sync_pending SET next_attempt_at = now() + interval '1 second'
WHERE workspace_id = %(workspace_id)s;

-- name: git_sync_user_email
SELECT email FROM app_user WHERE username = %(username)s;
