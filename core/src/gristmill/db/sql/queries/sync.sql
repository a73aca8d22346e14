-- name: sync_secret_ciphertexts
-- The stored (encrypted) values of the secrets the caller may read, for a workspace archive:
-- the ciphertext only this workspace's key opens, never decrypted here.
SELECT path, value
FROM variable
WHERE workspace_id = %(workspace_id)s
  AND is_secret
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s);
