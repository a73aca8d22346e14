-- Flow concurrency limits and same_worker steps (see gristmill.flows.engine, "Concurrency"
-- and "same_worker"; migration 0012). Names are prefixed `flowctl_`.

-- name: flowctl_lock_key
-- Serialize the decisions of one concurrency key until the transaction ends: two flows of a
-- key ending at once never start the same waiting run twice, nor two runs for one slot.
-- (Class 13 keeps these locks apart from other advisory locks; a hash collision between
-- two keys only serializes them more than needed.)
SELECT pg_advisory_xact_lock(13, hashtext(%(key)s));

-- name: flowctl_key_state
-- How many slots of the key are taken (runs still running, and runs that ended less than
-- their window ago) and how many runs wait.
SELECT
    count(*) FILTER (
        WHERE c.started_at IS NOT NULL
          AND (q.id IS NOT NULL
               OR d.completed_at > now() - make_interval(secs => c.window_s))
    ) AS active,
    count(*) FILTER (WHERE c.started_at IS NULL AND q.id IS NOT NULL) AS waiting
FROM flow_concurrency c
LEFT JOIN job_queue q ON q.id = c.id
LEFT JOIN job_completed d ON d.id = c.id
WHERE c.key = %(key)s;

-- name: flowctl_insert
INSERT INTO flow_concurrency (id, workspace_id, key, concurrent_limit, window_s, started_at)
VALUES (
    %(id)s, %(workspace_id)s, %(key)s, %(concurrent_limit)s, %(window_s)s,
    CASE WHEN %(start)s THEN now() END
);

-- name: flowctl_set_waiting
-- A run over its key's limit: queued, not running (its row stays out of every worker's
-- reach: the claim query never takes tag `flow`).
UPDATE job_queue SET running = false, started_at = NULL WHERE id = %(id)s;

-- name: flowctl_prune
-- Forget the key's runs that hold no slot any more: ended longer than their window ago, or
-- canceled while waiting.
DELETE FROM flow_concurrency c
WHERE c.key = %(key)s
  AND NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.id = c.id)
  AND (c.started_at IS NULL OR NOT EXISTS (
      SELECT 1 FROM job_completed d
      WHERE d.id = c.id AND d.completed_at > now() - make_interval(secs => c.window_s)));

-- name: flowctl_next_waiter
-- The key's oldest waiting run, with its limit and the slots taken now.
SELECT c.id, c.concurrent_limit,
    (SELECT count(*) FROM flow_concurrency a
     LEFT JOIN job_queue aq ON aq.id = a.id
     LEFT JOIN job_completed ad ON ad.id = a.id
     WHERE a.key = c.key AND a.started_at IS NOT NULL
       AND (aq.id IS NOT NULL
            OR ad.completed_at > now() - make_interval(secs => a.window_s))) AS active
FROM flow_concurrency c
JOIN job_queue q ON q.id = c.id
WHERE c.key = %(key)s AND c.started_at IS NULL
ORDER BY c.queued_at, c.id
LIMIT 1;

-- name: flowctl_start_waiter
-- A waiting run gets its slot: its flow job becomes running (held by no worker, as every
-- flow job); nothing when it was canceled meanwhile.
WITH q AS (
    UPDATE job_queue SET running = true, started_at = now()
    WHERE id = %(id)s AND NOT running
    RETURNING id
)
UPDATE flow_concurrency c SET started_at = now()
FROM q WHERE c.id = q.id
RETURNING c.id;

-- name: flowctl_forget
DELETE FROM flow_concurrency WHERE id = %(id)s;

-- name: flowctl_key_of
-- The key of a run that holds a slot (nothing for a flow without a limit).
SELECT key FROM flow_concurrency WHERE id = %(id)s AND started_at IS NOT NULL;

-- name: flowctl_waiting_keys
-- Keys with runs waiting (for the monitor: a slot frees when a window passes, or when a
-- running flow is canceled).
SELECT DISTINCT c.key FROM flow_concurrency c
JOIN job_queue q ON q.id = c.id
WHERE c.started_at IS NULL
LIMIT 1000;

-- name: flowctl_pin_step
-- same_worker: the step's job may run only on the worker that ran the flow's first step
-- (the earliest of its steps completed by a worker). Before any step ran: '*', any worker
-- takes it (and is then the flow's worker); the pin also tells the worker it is a
-- same_worker step (the claim query returns it).
UPDATE job_queue q SET worker_pin = coalesce((
    SELECT c.worker FROM job j JOIN job_completed c USING (id)
    WHERE j.parent_job = %(flow_id)s AND c.worker IS NOT NULL
    ORDER BY c.completed_at, c.started_at
    LIMIT 1
), '*')
WHERE q.id = %(id)s AND NOT q.running;

-- name: flowctl_flow_live
-- Whether a flow job is still queued or running (its shared directory is kept until not).
SELECT EXISTS (SELECT 1 FROM job_queue WHERE id = %(id)s);

-- name: flowctl_unpin_lost
-- same_worker steps pinned to a worker whose process is gone (stopped, restarted under a new
-- name, silent for `within_s`): any worker may take them now (without the flow's shared
-- files, which stayed on the lost one) rather than waiting forever.
UPDATE job_queue q SET worker_pin = '*'
WHERE q.worker_pin IS NOT NULL AND q.worker_pin <> '*' AND NOT q.running
  AND NOT EXISTS (
      SELECT 1 FROM worker_ping w
      WHERE left(q.worker_pin, length(w.worker_instance) + 1) = w.worker_instance || '-'
        AND w.ping_at > now() - make_interval(secs => %(within_s)s))
RETURNING q.id, pg_notify('gristmill_queue', q.tag);
