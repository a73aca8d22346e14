-- The audit log.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: insert_audit
INSERT INTO audit (workspace_id, username, operation, action_kind, resource, parameters)
VALUES (%(workspace_id)s, %(username)s, %(operation)s, %(action_kind)s, %(resource)s,
        %(parameters)s);

-- name: list_audit
-- A workspace's entries, newest first, filtered (a NULL filter is no filter; `operation` and
-- `resource` are LIKE patterns: exact or prefix).
SELECT id, timestamp, username, operation, action_kind, resource, parameters
FROM audit
WHERE workspace_id = %(workspace_id)s
  AND (%(before)s::timestamptz IS NULL OR timestamp <= %(before)s::timestamptz)
  AND (%(after)s::timestamptz IS NULL OR timestamp > %(after)s::timestamptz)
  AND (%(username)s::text IS NULL OR username = %(username)s::text)
  AND (%(operation)s::text IS NULL OR operation LIKE %(operation)s::text ESCAPE '\')
  AND (%(operations)s::text[] IS NULL OR operation = ANY (%(operations)s::text[]))
  AND (%(exclude_operations)s::text[] IS NULL
       OR NOT operation = ANY (%(exclude_operations)s::text[]))
  AND (%(resource)s::text IS NULL OR resource LIKE %(resource)s::text ESCAPE '\')
  AND (%(action_kind)s::text IS NULL OR action_kind = %(action_kind)s::text)
ORDER BY timestamp DESC, id DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: get_audit
SELECT id, timestamp, username, operation, action_kind, resource, parameters
FROM audit
WHERE workspace_id = %(workspace_id)s AND id = %(id)s;
