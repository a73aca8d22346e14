-- Workspaces.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: workspace_exists
SELECT 1 FROM workspace WHERE id = %(workspace_id)s AND NOT deleted;
