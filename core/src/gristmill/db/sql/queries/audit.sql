-- The audit log.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: insert_audit
INSERT INTO audit (workspace_id, username, operation, action_kind, resource, parameters)
VALUES (%(workspace_id)s, %(username)s, %(operation)s, %(action_kind)s, %(resource)s,
        %(parameters)s);
