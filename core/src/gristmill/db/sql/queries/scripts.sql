-- Script versions, their deployment (locks) and lists.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: insert_script
INSERT INTO script (
    workspace_id, hash, path, parent_hashes, summary, description, content, schema,
    language, kind, tag, lock, timeout, priority, envs, deployment_message, created_by,
    extra_perms
) VALUES (
    %(workspace_id)s, %(hash)s, %(path)s, %(parent_hashes)s, %(summary)s, %(description)s,
    %(content)s, %(schema)s, %(language)s, %(kind)s, %(tag)s, %(lock)s, %(timeout)s,
    %(priority)s, %(envs)s, %(deployment_message)s, %(created_by)s, %(extra_perms)s
)
ON CONFLICT DO NOTHING
RETURNING hash;

-- name: archive_script
UPDATE script SET archived = true WHERE workspace_id = %(workspace_id)s AND hash = %(hash)s;

-- name: lock_script_path
-- Serialize creations at one path, so that two saves cannot both become the latest.
SELECT pg_advisory_xact_lock(hashtextextended(%(workspace_id)s || '/' || %(path)s, 0));

-- name: get_script_by_path
-- The newest version at a path, archived or not (as Windmill's get/p).
SELECT * FROM script
WHERE workspace_id = %(workspace_id)s AND path = %(path)s AND NOT deleted
ORDER BY created_at DESC
LIMIT 1;

-- name: get_live_script_by_path
-- The version that runs at a path: the newest one not archived.
SELECT * FROM script
WHERE workspace_id = %(workspace_id)s AND path = %(path)s AND NOT archived AND NOT deleted
ORDER BY created_at DESC
LIMIT 1;

-- name: get_script_by_hash
SELECT * FROM script WHERE workspace_id = %(workspace_id)s AND hash = %(hash)s AND NOT deleted;

-- name: find_script_hash
SELECT workspace_id, path FROM script WHERE hash = %(hash)s;

-- name: list_scripts
-- The newest version of each path, newest paths first: the columns the list shows, never
-- the content. `path_like` is a prefix pattern with its wildcards escaped (like_prefix).
-- Only the paths the caller may read (gm_can_read with Access.sql_params()).
SELECT * FROM (
    SELECT DISTINCT ON (path)
        hash, path, summary, description, created_at, created_by, archived, language, kind,
        tag, lock_error_logs IS NOT NULL AS has_deploy_errors
    FROM script
    WHERE workspace_id = %(workspace_id)s AND NOT deleted
      AND (%(show_archived)s OR NOT archived)
      AND (%(path_like)s::text IS NULL OR path LIKE %(path_like)s ESCAPE '\')
      AND (%(path_exact)s::text IS NULL OR path = %(path_exact)s)
      AND (%(created_by)s::text IS NULL OR created_by = %(created_by)s)
      AND (%(language)s::text IS NULL OR language = %(language)s)
      AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
    ORDER BY path, created_at DESC
) latest
ORDER BY created_at DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_script_paths
-- The paths of the live scripts the caller may read, sorted.
SELECT DISTINCT path FROM script
WHERE workspace_id = %(workspace_id)s AND NOT deleted AND NOT archived
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY path;

-- name: script_history
SELECT hash, deployment_message, created_at, created_by FROM script
WHERE workspace_id = %(workspace_id)s AND path = %(path)s AND NOT deleted
ORDER BY created_at DESC;

-- name: set_script_lock
-- The outcome of a version's dependency job: its lock, or why it could not be locked.
UPDATE script SET lock = %(lock)s, lock_error_logs = %(lock_error_logs)s
WHERE workspace_id = %(workspace_id)s AND hash = %(hash)s;

-- name: get_script_lock
SELECT lock, lock_error_logs FROM script
WHERE workspace_id = %(workspace_id)s AND hash = %(hash)s;

-- name: last_dependency_job
-- The newest dependency job of a version, with its state.
SELECT j.id, q.running, c.status
FROM job j
LEFT JOIN job_queue q USING (id)
LEFT JOIN job_completed c USING (id)
WHERE j.workspace_id = %(workspace_id)s AND j.runnable_path = %(path)s
  AND j.runnable_hash = %(hash)s AND j.kind = 'dependencies'
ORDER BY j.created_at DESC
LIMIT 1;

-- name: archive_script_path
-- Archive every version at a path: nothing runs there any more (`run/p` answers 404).
UPDATE script SET archived = true
WHERE workspace_id = %(workspace_id)s AND path = %(path)s AND NOT deleted;

-- name: delete_script_hash
-- Delete one version (Windmill's delete/h): the row stays for the jobs that name it, without
-- its source.
UPDATE script SET deleted = true, archived = true, content = '', lock = NULL
WHERE workspace_id = %(workspace_id)s AND hash = %(hash)s;

-- name: delete_script_path
-- Delete every version at a path (Windmill's delete/p): the path can be created anew.
DELETE FROM script WHERE workspace_id = %(workspace_id)s AND path = %(path)s;
