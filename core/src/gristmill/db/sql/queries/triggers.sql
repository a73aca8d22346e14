-- Triggers of the `trigger` table (gristmill.triggers.store). Every change notifies
-- `gristmill_triggers` with the kind, so every server process reloads what it serves.

-- name: trig_get
SELECT * FROM trigger WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND path = %(path)s;

-- name: trig_get_for_update
SELECT * FROM trigger
WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND path = %(path)s
FOR UPDATE;

-- name: trig_insert
INSERT INTO trigger (workspace_id, kind, path, script_path, is_flow, summary, description,
                     config, mode, edited_by, email)
VALUES (%(workspace_id)s, %(kind)s, %(path)s, %(script_path)s, %(is_flow)s, %(summary)s,
        %(description)s, %(config)s, %(mode)s, %(edited_by)s, %(email)s)
ON CONFLICT DO NOTHING
RETURNING *;

-- name: trig_update
-- A save clears the error (the trigger is tried again) and the listener's claim (the holder
-- restarts it with the new configuration).
UPDATE trigger SET path = %(new_path)s, script_path = %(script_path)s, is_flow = %(is_flow)s,
    summary = %(summary)s, description = %(description)s, config = %(config)s,
    mode = %(mode)s, edited_by = %(edited_by)s, email = %(email)s, edited_at = now(),
    error = NULL, error_at = NULL, server_id = NULL, last_server_ping = NULL
WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND path = %(path)s
RETURNING *;

-- name: trig_set_mode
UPDATE trigger SET mode = %(mode)s, edited_by = %(edited_by)s, edited_at = now(),
    error = NULL, error_at = NULL, server_id = NULL, last_server_ping = NULL
WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND path = %(path)s
RETURNING *;

-- name: trig_delete
DELETE FROM trigger WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND path = %(path)s;

-- name: trig_list
-- The triggers of a kind the caller may read (gm_can_read with Access.sql_params()).
SELECT * FROM trigger
WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s
  AND (%(path_start)s::text IS NULL OR path LIKE %(path_start)s ESCAPE '\')
  AND (%(script_path)s::text IS NULL OR script_path = %(script_path)s)
  AND (%(is_flow)s::boolean IS NULL OR is_flow = %(is_flow)s)
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY path
LIMIT %(limit)s OFFSET %(offset)s;

-- name: trig_enabled_of_kind
-- What a server serves: the enabled triggers of one kind in every workspace.
SELECT * FROM trigger WHERE kind = %(kind)s AND mode = 'enabled' ORDER BY workspace_id, path;

-- name: trig_set_error
UPDATE trigger SET error = %(error)s, error_at = CASE WHEN %(error)s::text IS NULL THEN NULL ELSE now() END
WHERE workspace_id = %(workspace_id)s AND kind = %(kind)s AND path = %(path)s
  AND error IS DISTINCT FROM %(error)s;

-- name: trig_claim
-- A server takes the enabled listener triggers of a kind that nobody holds, or whose holder
-- stopped pinging, and renews those it holds; returns what it now holds.
UPDATE trigger SET server_id = %(server_id)s, last_server_ping = now()
WHERE kind = %(kind)s AND mode = 'enabled'
  AND (server_id IS NULL OR server_id = %(server_id)s
       OR last_server_ping < now() - make_interval(secs => %(lease_s)s))
RETURNING *;

-- name: trig_release
UPDATE trigger SET server_id = NULL, last_server_ping = NULL
WHERE kind = %(kind)s AND server_id = %(server_id)s;

-- name: trig_notify
SELECT pg_notify('gristmill_triggers', %(kind)s);
