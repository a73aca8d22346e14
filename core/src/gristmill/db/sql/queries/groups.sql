-- Groups of a workspace and their members (the group `all` is implicit: every member).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: list_groups
-- Every group with its members (sorted usernames).
SELECT g.name, g.summary, g.extra_perms,
       coalesce(array_agg(m.username ORDER BY m.username)
                FILTER (WHERE m.username IS NOT NULL), '{}') AS members
FROM group_ g
LEFT JOIN group_member m ON m.workspace_id = g.workspace_id AND m.group_name = g.name
WHERE g.workspace_id = %(workspace_id)s
GROUP BY g.name, g.summary, g.extra_perms
ORDER BY g.name;

-- name: get_group
SELECT g.name, g.summary, g.extra_perms,
       coalesce(array_agg(m.username ORDER BY m.username)
                FILTER (WHERE m.username IS NOT NULL), '{}') AS members
FROM group_ g
LEFT JOIN group_member m ON m.workspace_id = g.workspace_id AND m.group_name = g.name
WHERE g.workspace_id = %(workspace_id)s AND g.name = %(name)s
GROUP BY g.name, g.summary, g.extra_perms;

-- name: workspace_usernames
-- The usernames of the enabled members of a workspace (the members of the group `all`).
SELECT u.username
FROM workspace_member m JOIN app_user u ON u.email = m.email
WHERE m.workspace_id = %(workspace_id)s AND NOT m.disabled
ORDER BY u.username;

-- name: is_workspace_username
-- Whether `username` is a member (enabled or not) of the workspace.
SELECT 1
FROM workspace_member m JOIN app_user u ON u.email = m.email
WHERE m.workspace_id = %(workspace_id)s AND u.username = %(username)s;

-- name: insert_group
INSERT INTO group_ (workspace_id, name, summary, extra_perms)
VALUES (%(workspace_id)s, %(name)s, %(summary)s, %(extra_perms)s)
ON CONFLICT DO NOTHING
RETURNING name;

-- name: update_group_summary
UPDATE group_ SET summary = %(summary)s
WHERE workspace_id = %(workspace_id)s AND name = %(name)s
RETURNING name;

-- name: delete_group
-- Its memberships go with it (ON DELETE CASCADE).
DELETE FROM group_ WHERE workspace_id = %(workspace_id)s AND name = %(name)s RETURNING name;

-- name: add_group_member
INSERT INTO group_member (workspace_id, group_name, username)
VALUES (%(workspace_id)s, %(name)s, %(username)s)
ON CONFLICT DO NOTHING
RETURNING username;

-- name: remove_group_member
DELETE FROM group_member
WHERE workspace_id = %(workspace_id)s AND group_name = %(name)s AND username = %(username)s
RETURNING username;
