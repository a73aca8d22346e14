-- Per-item ACLs (`extra_perms`: {"u/alice": true, "g/team": false}), one query per kind
-- and operation: gristmill.workspace.acls maps each supported kind to its queries (an
-- allowlist; no table name is ever built from a request).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: acl_get_script
SELECT extra_perms FROM script
WHERE workspace_id = %(workspace_id)s AND path = %(path)s AND NOT deleted
ORDER BY created_at DESC
LIMIT 1;

-- name: acl_add_script
-- Every version of the script at the path (a new version inherits them).
UPDATE script SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_script
UPDATE script SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_get_group
SELECT extra_perms FROM group_
WHERE workspace_id = %(workspace_id)s AND name = %(path)s;

-- name: acl_add_group
UPDATE group_ SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND name = %(path)s
RETURNING extra_perms;

-- name: acl_remove_group
UPDATE group_ SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND name = %(path)s
RETURNING extra_perms;

-- name: acl_get_folder
SELECT extra_perms FROM folder
WHERE workspace_id = %(workspace_id)s AND name = %(path)s;

-- name: acl_add_folder
UPDATE folder SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND name = %(path)s
RETURNING extra_perms;

-- name: acl_remove_folder
UPDATE folder SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND name = %(path)s
RETURNING extra_perms;

-- name: acl_get_variable
SELECT extra_perms FROM variable
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: acl_add_variable
UPDATE variable SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_variable
UPDATE variable SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_get_resource
SELECT extra_perms FROM resource
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: acl_add_resource
UPDATE resource SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_resource
UPDATE resource SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_get_flow
SELECT extra_perms FROM flow
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: acl_add_flow
UPDATE flow SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_flow
UPDATE flow SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_get_schedule
SELECT extra_perms FROM schedule
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: acl_add_schedule
UPDATE schedule SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_schedule
UPDATE schedule SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING extra_perms;

-- Triggers of the `trigger` table: one kind each (the core's kinds).

-- name: acl_get_http_trigger
SELECT extra_perms FROM trigger
WHERE workspace_id = %(workspace_id)s AND kind = 'http' AND path = %(path)s;

-- name: acl_add_http_trigger
UPDATE trigger SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND kind = 'http' AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_http_trigger
UPDATE trigger SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND kind = 'http' AND path = %(path)s
RETURNING extra_perms;

-- name: acl_get_postgres_trigger
SELECT extra_perms FROM trigger
WHERE workspace_id = %(workspace_id)s AND kind = 'postgres' AND path = %(path)s;

-- name: acl_add_postgres_trigger
UPDATE trigger SET extra_perms = extra_perms || jsonb_build_object(%(owner)s::text, %(write)s::boolean)
WHERE workspace_id = %(workspace_id)s AND kind = 'postgres' AND path = %(path)s
RETURNING extra_perms;

-- name: acl_remove_postgres_trigger
UPDATE trigger SET extra_perms = extra_perms - %(owner)s::text
WHERE workspace_id = %(workspace_id)s AND kind = 'postgres' AND path = %(path)s
RETURNING extra_perms;
