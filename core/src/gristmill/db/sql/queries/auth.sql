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

-- name: delete_token
DELETE FROM token WHERE token_hash = %(token_hash)s;

-- name: first_super_admin
-- The oldest super admin (the local CLI's token acts as them).
SELECT email FROM app_user WHERE super_admin ORDER BY created_at LIMIT 1;
