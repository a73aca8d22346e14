-- Users get a display name (Windmill's GlobalUserInfo `name`), set at creation.
ALTER TABLE app_user ADD COLUMN name text;

-- Pruning old failures scans by time alone.
CREATE INDEX login_failure_by_time ON login_failure (failed_at);
