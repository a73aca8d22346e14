-- Workspaces.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: workspace_exists
SELECT 1 FROM workspace WHERE id = %(workspace_id)s AND NOT deleted;

-- name: get_access
-- A user's membership in a workspace: role, disabled, and the groups they belong to.
SELECT m.role, m.disabled,
       coalesce(array_agg(g.group_name) FILTER (WHERE g.group_name IS NOT NULL), '{}')
FROM workspace_member m
JOIN app_user u ON u.email = m.email
LEFT JOIN group_member g ON g.workspace_id = m.workspace_id AND g.username = %(username)s
WHERE m.workspace_id = %(workspace_id)s AND m.email = %(email)s
GROUP BY m.role, m.disabled;

-- name: get_folder_access
-- The folders visible to `owners` ("u/<me>" and "g/<group>"s): name, whether they may write
-- its items, whether they own it.
SELECT name,
       owners && %(owners)s::text[]
         OR EXISTS (SELECT 1 FROM jsonb_each(extra_perms) e
                    WHERE e.key = ANY (%(owners)s::text[]) AND e.value = 'true'::jsonb),
       owners && %(owners)s::text[]
FROM folder
WHERE workspace_id = %(workspace_id)s
  AND (owners && %(owners)s::text[] OR extra_perms ?| %(owners)s::text[]);

-- name: add_member
-- Make a user a member of a workspace (or change their role).
INSERT INTO workspace_member (workspace_id, email, role, added_by)
VALUES (%(workspace_id)s, %(email)s, %(role)s, %(added_by)s)
ON CONFLICT (workspace_id, email) DO UPDATE SET role = EXCLUDED.role, disabled = false;
