-- Users and API tokens.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: count_users
SELECT count(*) FROM app_user;

-- name: insert_user
INSERT INTO app_user (email, username, password_hash, super_admin)
VALUES (%(email)s, %(username)s, %(password_hash)s, %(super_admin)s)
ON CONFLICT DO NOTHING
RETURNING email;

-- name: get_user
SELECT email, username, password_hash, super_admin FROM app_user WHERE email = %(email)s;

-- name: insert_token
INSERT INTO token (token_hash, token_prefix, email, label, expiration, scopes, workspace_id)
VALUES (%(token_hash)s, %(token_prefix)s, %(email)s, %(label)s, %(expiration)s,
        %(scopes)s, %(workspace_id)s);

-- name: get_token_owner
-- The owner of a valid (unexpired) token, the token's scopes and workspace.
SELECT u.email, u.username, u.super_admin, t.scopes, t.workspace_id
FROM token t JOIN app_user u USING (email)
WHERE t.token_hash = %(token_hash)s AND (t.expiration IS NULL OR t.expiration > now());

-- name: get_token_access
-- `get_token_owner` and, in the same round trip, the owner's access to the request's
-- workspace (`gm_access`, migration 0007).
SELECT u.email, u.username, u.super_admin, t.scopes, t.workspace_id, a.*
FROM token t
JOIN app_user u USING (email)
CROSS JOIN LATERAL gm_access(%(workspace_id)s, u.email, u.username) a
WHERE t.token_hash = %(token_hash)s AND (t.expiration IS NULL OR t.expiration > now());

-- name: delete_token
DELETE FROM token WHERE token_hash = %(token_hash)s;

-- name: first_super_admin
-- The oldest super admin (the local CLI's token acts as them).
SELECT email FROM app_user WHERE super_admin ORDER BY created_at LIMIT 1;

-- name: count_login_failures
-- Failed logins under `key` since `since`, and the oldest of them (when the window frees up).
SELECT count(*), min(failed_at) FROM login_failure
WHERE key = %(key)s AND failed_at > %(since)s;

-- name: insert_login_failure
INSERT INTO login_failure (key) VALUES (%(key)s);

-- name: clear_login_failures
DELETE FROM login_failure WHERE key = %(key)s;

-- name: prune_login_failures
-- Failures older than the window no longer count.
DELETE FROM login_failure WHERE failed_at < %(before)s;

-- name: get_user_full
-- A user as GlobalUserInfo shows them.
SELECT email, username, super_admin, name, created_at FROM app_user WHERE email = %(email)s;

-- name: get_user_by_username
SELECT email, username, super_admin, name, created_at FROM app_user WHERE username = %(username)s;

-- name: insert_user_named
INSERT INTO app_user (email, username, password_hash, super_admin, name)
VALUES (%(email)s, %(username)s, %(password_hash)s, %(super_admin)s, %(name)s)
ON CONFLICT DO NOTHING
RETURNING email;

-- name: set_password_hash
UPDATE app_user SET password_hash = %(password_hash)s WHERE email = %(email)s RETURNING email;

-- name: list_users
-- All users of the instance, by email.
SELECT email, username, super_admin, name, created_at FROM app_user
ORDER BY email LIMIT %(limit)s OFFSET %(offset)s;

-- name: delete_user
-- A user goes, with their group memberships (kept by username, which a later user may take).
WITH gone AS (DELETE FROM app_user WHERE email = %(email)s RETURNING email, username),
     groups AS (DELETE FROM group_member WHERE username IN (SELECT username FROM gone))
SELECT email FROM gone;

-- name: delete_other_sessions
-- Revoke a user's login sessions but one (after a password change).
DELETE FROM token
WHERE email = %(email)s AND label = 'session' AND token_hash <> %(keep)s;

-- name: list_tokens
-- A user's API tokens (never the token itself: only its prefix).
SELECT token_prefix, label, expiration, created_at, scopes, workspace_id, last_used_at
FROM token WHERE email = %(email)s
ORDER BY created_at DESC LIMIT %(limit)s OFFSET %(offset)s;

-- name: delete_token_by_prefix
DELETE FROM token WHERE email = %(email)s AND token_prefix = %(prefix)s RETURNING token_prefix;
