-- What the readiness check (gristmill.server.health) reads: one round trip each, on an
-- index or a table of a few rows.

-- name: health_worker_ping_age
-- Seconds since this worker process last announced itself (no row: never, or withdrawn).
SELECT extract(epoch FROM now() - ping_at)::float8 FROM worker_ping
WHERE worker_instance = %(worker_instance)s;
