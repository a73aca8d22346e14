-- Workspaces.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: workspace_exists
SELECT 1 FROM workspace WHERE id = %(workspace_id)s AND NOT deleted;

-- name: get_access
-- Everything a workspace request needs to know about its caller, in one round trip (the
-- function `gm_access`, migration 0007): whether the workspace exists, the membership, the
-- groups, the folders readable, writable and owned.
SELECT * FROM gm_access(%(workspace_id)s, %(email)s, %(username)s);

-- name: add_member
-- Make a user a member of a workspace (or change their role).
INSERT INTO workspace_member (workspace_id, email, role, added_by)
VALUES (%(workspace_id)s, %(email)s, %(role)s, %(added_by)s)
ON CONFLICT (workspace_id, email) DO UPDATE SET role = EXCLUDED.role, disabled = false;

-- name: workspace_id_taken
-- Whether an id is used by a workspace, deleted ones included (ids are never reused).
SELECT deleted FROM workspace WHERE id = %(workspace_id)s;

-- name: insert_workspace
INSERT INTO workspace (id, name, owner) VALUES (%(workspace_id)s, %(name)s, %(owner)s)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: get_workspace
SELECT id, name, owner, deleted FROM workspace WHERE id = %(workspace_id)s AND NOT deleted;

-- name: list_user_workspaces
-- The workspaces a user is a member of (disabled memberships included, flagged), by id.
SELECT w.id, w.name, w.owner, m.disabled
FROM workspace w JOIN workspace_member m ON m.workspace_id = w.id
WHERE m.email = %(email)s AND NOT w.deleted
ORDER BY w.id;

-- name: list_all_workspaces
-- Every workspace; deleted ones only when asked.
SELECT id, name, owner, deleted FROM workspace
WHERE %(include_deleted)s OR NOT deleted
ORDER BY id LIMIT %(limit)s OFFSET %(offset)s;

-- name: soft_delete_workspace
UPDATE workspace SET deleted = true WHERE id = %(workspace_id)s AND NOT deleted RETURNING id;

-- name: list_members
-- The members of a workspace, with their user, groups and membership.
SELECT u.email, u.username, u.super_admin, u.name, m.role, m.disabled, m.created_at,
       coalesce(array_agg(g.group_name ORDER BY g.group_name)
                FILTER (WHERE g.group_name IS NOT NULL), '{}')
FROM workspace_member m
JOIN app_user u ON u.email = m.email
LEFT JOIN group_member g ON g.workspace_id = m.workspace_id AND g.username = u.username
WHERE m.workspace_id = %(workspace_id)s
  AND (%(username)s::text IS NULL OR u.username = %(username)s)
GROUP BY u.email, u.username, u.super_admin, u.name, m.role, m.disabled, m.created_at
ORDER BY u.username;

-- name: get_member
-- One membership (by email), for checks before changing it.
SELECT m.role, m.disabled FROM workspace_member m
WHERE m.workspace_id = %(workspace_id)s AND m.email = %(email)s;

-- name: count_other_admins
-- The enabled admins of a workspace other than `email` (a workspace keeps at least one).
SELECT count(*) FROM workspace_member
WHERE workspace_id = %(workspace_id)s AND role = 'admin' AND NOT disabled
  AND email <> %(email)s;

-- name: update_member
UPDATE workspace_member SET role = %(role)s, disabled = %(disabled)s
WHERE workspace_id = %(workspace_id)s AND email = %(email)s
RETURNING email;

-- name: delete_member
DELETE FROM workspace_member WHERE workspace_id = %(workspace_id)s AND email = %(email)s
RETURNING email;

-- name: delete_member_groups
-- A removed member leaves the workspace's groups too.
DELETE FROM group_member WHERE workspace_id = %(workspace_id)s AND username = %(username)s;

-- name: upsert_invite
INSERT INTO workspace_invite (workspace_id, email, role, invited_by)
VALUES (%(workspace_id)s, %(email)s, %(role)s, %(invited_by)s)
ON CONFLICT (workspace_id, email) DO UPDATE
SET role = EXCLUDED.role, invited_by = EXCLUDED.invited_by, created_at = now();

-- name: delete_invite
DELETE FROM workspace_invite WHERE workspace_id = %(workspace_id)s AND email = %(email)s
RETURNING role;

-- name: list_workspace_invites
SELECT workspace_id, email, role FROM workspace_invite
WHERE workspace_id = %(workspace_id)s ORDER BY email;

-- name: list_user_invites
-- The invitations of a user to workspaces that still exist.
SELECT i.workspace_id, i.email, i.role FROM workspace_invite i
JOIN workspace w ON w.id = i.workspace_id
WHERE i.email = %(email)s AND NOT w.deleted
ORDER BY i.workspace_id;
