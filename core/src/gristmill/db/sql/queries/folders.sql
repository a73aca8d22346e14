-- Folders: named spaces of items (`f/<folder>/...`) with owners and per-folder ACLs.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: list_folders
-- The folders the caller sees: all for an admin, else those it owns or whose extra_perms
-- name it (`owners` is "u/<me>" and "g/<group>"s).
SELECT name, display_name, summary, owners, extra_perms, created_by, edited_at
FROM folder
WHERE workspace_id = %(workspace_id)s
  AND (%(is_admin)s OR owners && %(owners)s::text[] OR extra_perms ?| %(owners)s::text[])
ORDER BY name
LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_folder_names
SELECT name
FROM folder
WHERE workspace_id = %(workspace_id)s
  AND (%(is_admin)s OR owners && %(owners)s::text[] OR extra_perms ?| %(owners)s::text[])
ORDER BY name;

-- name: get_folder
SELECT name, display_name, summary, owners, extra_perms, created_by, edited_at
FROM folder WHERE workspace_id = %(workspace_id)s AND name = %(name)s;

-- name: folder_exists
SELECT 1 FROM folder WHERE workspace_id = %(workspace_id)s AND name = %(name)s;

-- name: insert_folder
INSERT INTO folder (workspace_id, name, display_name, summary, owners, extra_perms, created_by)
VALUES (%(workspace_id)s, %(name)s, %(display_name)s, %(summary)s, %(owners)s,
        %(extra_perms)s, %(created_by)s)
ON CONFLICT DO NOTHING
RETURNING name;

-- name: update_folder
-- Each of summary, display_name, owners, extra_perms is kept when NULL.
UPDATE folder SET
    summary = coalesce(%(summary)s, summary),
    display_name = coalesce(%(display_name)s, display_name),
    owners = coalesce(%(owners)s::text[], owners),
    extra_perms = coalesce(%(extra_perms)s::jsonb, extra_perms),
    edited_at = now()
WHERE workspace_id = %(workspace_id)s AND name = %(name)s
RETURNING name;

-- name: delete_folder
DELETE FROM folder WHERE workspace_id = %(workspace_id)s AND name = %(name)s RETURNING name;

-- name: add_folder_owner
UPDATE folder SET owners = array_append(owners, %(owner)s::text), edited_at = now()
WHERE workspace_id = %(workspace_id)s AND name = %(name)s AND NOT %(owner)s = ANY (owners)
RETURNING name;

-- name: remove_folder_owner
UPDATE folder SET owners = array_remove(owners, %(owner)s::text), edited_at = now()
WHERE workspace_id = %(workspace_id)s AND name = %(name)s AND %(owner)s = ANY (owners)
RETURNING name;

-- name: folder_usage
-- How many items live in a folder: script paths (live versions), resources, variables,
-- live flows.
-- The folder is compared by segment, not LIKE (a '_' in its name would be a wildcard).
SELECT
    (SELECT count(DISTINCT path) FROM script
     WHERE workspace_id = %(workspace_id)s AND NOT archived AND NOT deleted
       AND split_part(path, '/', 1) = 'f' AND split_part(path, '/', 2) = %(name)s),
    (SELECT count(*) FROM resource
     WHERE workspace_id = %(workspace_id)s
       AND split_part(path, '/', 1) = 'f' AND split_part(path, '/', 2) = %(name)s),
    (SELECT count(*) FROM variable
     WHERE workspace_id = %(workspace_id)s
       AND split_part(path, '/', 1) = 'f' AND split_part(path, '/', 2) = %(name)s),
    (SELECT count(*) FROM flow
     WHERE workspace_id = %(workspace_id)s AND NOT archived
       AND split_part(path, '/', 1) = 'f' AND split_part(path, '/', 2) = %(name)s);
