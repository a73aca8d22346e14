-- Flows as stored objects: the current flow at each path, and its versions (the history).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: get_flow
-- The flow at a path, archived or not, with the id of its current version.
SELECT workspace_id, path, summary, description, value, schema, edited_by, edited_at,
       archived, extra_perms, tag, ws_error_handler_muted, dedicated_worker,
       visible_to_runner_only, timeout, priority, versions[cardinality(versions)] AS version_id
FROM flow
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: lock_flow
-- The flow at a path, locked until the transaction ends (an update reads, checks, writes).
SELECT workspace_id, path, summary, description, value, schema, edited_by, edited_at,
       archived, extra_perms, tag, ws_error_handler_muted, dedicated_worker,
       visible_to_runner_only, timeout, priority, versions[cardinality(versions)] AS version_id
FROM flow
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
FOR UPDATE;

-- name: flow_path_taken
SELECT EXISTS (SELECT 1 FROM flow WHERE workspace_id = %(workspace_id)s AND path = %(path)s);

-- name: insert_flow
-- A new flow without versions yet (insert_flow_version adds the first); nothing is returned
-- when the path is taken.
INSERT INTO flow (
    workspace_id, path, summary, description, value, schema, edited_by, tag,
    ws_error_handler_muted, dedicated_worker, visible_to_runner_only, timeout, priority
) VALUES (
    %(workspace_id)s, %(path)s, %(summary)s, %(description)s, %(value)s, %(schema)s,
    %(edited_by)s, %(tag)s, %(ws_error_handler_muted)s, %(dedicated_worker)s,
    %(visible_to_runner_only)s, %(timeout)s, %(priority)s
)
ON CONFLICT DO NOTHING
RETURNING path;

-- name: update_flow
-- Replace what a save sends, at the flow's (possibly new) path; its ACL and archived flag
-- stay. The versions follow a moved flow (ON UPDATE CASCADE).
UPDATE flow
SET path = %(new_path)s, summary = %(summary)s, description = %(description)s,
    value = %(value)s, schema = %(schema)s, edited_by = %(edited_by)s, edited_at = now(),
    tag = %(tag)s, ws_error_handler_muted = %(ws_error_handler_muted)s,
    dedicated_worker = %(dedicated_worker)s, visible_to_runner_only = %(visible_to_runner_only)s,
    timeout = %(timeout)s, priority = %(priority)s
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING path;

-- name: insert_flow_version
-- A version of the flow at a path, which becomes its current one.
WITH version AS (
    INSERT INTO flow_version (workspace_id, path, value, schema, created_by, deployment_msg)
    VALUES (%(workspace_id)s, %(path)s, %(value)s, %(schema)s, %(created_by)s,
            %(deployment_msg)s)
    RETURNING id
)
UPDATE flow SET versions = array_append(versions, (SELECT id FROM version))
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING versions[cardinality(versions)];

-- name: list_flows
-- The flows the caller may read (gm_can_read with Access.sql_params()), without their
-- value: live ones, or archived ones only with `show_archived` (Windmill's filter).
-- `path_like` is a prefix pattern with its wildcards escaped (like_prefix).
SELECT workspace_id, path, summary, description, edited_by, edited_at, archived,
       extra_perms, tag, ws_error_handler_muted, dedicated_worker, visible_to_runner_only,
       timeout, priority, versions[cardinality(versions)] AS version_id
FROM flow
WHERE workspace_id = %(workspace_id)s
  AND archived = %(show_archived)s
  AND (%(path_like)s::text IS NULL OR path LIKE %(path_like)s ESCAPE '\')
  AND (%(path_exact)s::text IS NULL OR path = %(path_exact)s)
  AND (%(edited_by)s::text IS NULL OR edited_by = %(edited_by)s)
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY CASE WHEN %(order_desc)s THEN edited_at END DESC,
         CASE WHEN NOT %(order_desc)s THEN edited_at END ASC,
         path
LIMIT %(limit)s OFFSET %(offset)s;

-- name: list_flow_paths
-- The paths of the live flows the caller may read, sorted.
SELECT path FROM flow
WHERE workspace_id = %(workspace_id)s AND NOT archived
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY path;

-- name: flow_history
-- The versions of the flow at a path, newest first.
SELECT id, created_at, deployment_msg, created_by FROM flow_version
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
ORDER BY id DESC;

-- name: get_flow_version
-- One version of a flow (of the flow at `path` when given): its value and schema, with the
-- flow's current fields.
SELECT f.workspace_id, f.path, f.summary, f.description, v.value, v.schema, f.edited_by,
       f.edited_at, f.archived, f.extra_perms, f.tag, f.ws_error_handler_muted,
       f.dedicated_worker, f.visible_to_runner_only, f.timeout, f.priority,
       v.id AS version_id
FROM flow_version v
JOIN flow f ON f.workspace_id = v.workspace_id AND f.path = v.path
WHERE v.workspace_id = %(workspace_id)s AND v.id = %(id)s
  AND (%(path)s::text IS NULL OR v.path = %(path)s);

-- name: archive_flow
-- Archive (or bring back) the flow at a path: archived flows leave the lists.
UPDATE flow SET archived = %(archived)s
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: delete_flow
-- The flow and its versions (ON DELETE CASCADE): the path can be created anew.
DELETE FROM flow WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: flowcheck_targets
-- What a flow being saved names, as its workspace holds it, in one read: the script paths
-- with a live version (kind 'script'), the script hashes that exist (kind 'hash'), and every
-- live flow reachable from the sub-flow paths named, through their own `flow` modules at any
-- depth, with its value (kind 'flow'): enough to find cycles of sub-flows without a query
-- per level. UNION (not UNION ALL) stops the recursion on a cycle.
WITH RECURSIVE reach(path, value) AS (
    SELECT f.path, f.value FROM flow f
    WHERE f.workspace_id = %(workspace_id)s AND f.path = ANY(%(flow_paths)s::text[])
      AND NOT f.archived
    UNION
    SELECT f.path, f.value
    FROM reach r
    CROSS JOIN LATERAL jsonb_path_query(
        r.value, 'lax $.** ? (@.type == "flow" && exists(@.path)).path'
    ) AS child(p)
    JOIN flow f ON f.workspace_id = %(workspace_id)s AND f.path = child.p #>> '{}'
        AND NOT f.archived
)
SELECT 'flow' AS kind, path, NULL::bigint AS hash, value FROM reach
UNION ALL
SELECT DISTINCT 'script', path, NULL::bigint, NULL::jsonb FROM script
WHERE workspace_id = %(workspace_id)s AND path = ANY(%(script_paths)s::text[])
  AND NOT archived AND NOT deleted
UNION ALL
SELECT 'hash', path, hash, NULL::jsonb FROM script
WHERE workspace_id = %(workspace_id)s AND hash = ANY(%(hashes)s::bigint[]) AND NOT deleted;
