-- Worker processes announcing what they run.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: worker_ping
-- Announce (or refresh) a worker process.
INSERT INTO worker_ping (
    worker_instance, worker_group, hostname, pid, num_workers, tags, unavailable
) VALUES (
    %(worker_instance)s, %(worker_group)s, %(hostname)s, %(pid)s, %(num_workers)s, %(tags)s,
    %(unavailable)s
)
ON CONFLICT (worker_instance) DO UPDATE
SET tags = excluded.tags, unavailable = excluded.unavailable, ping_at = now();

-- name: worker_gone
DELETE FROM worker_ping WHERE worker_instance = %(worker_instance)s;

-- name: live_workers
-- Worker processes heard from recently.
SELECT worker_instance, worker_group, hostname, pid, num_workers, tags, unavailable,
       started_at, ping_at
FROM worker_ping
WHERE ping_at > now() - make_interval(secs => %(within_s)s)
ORDER BY worker_instance;
