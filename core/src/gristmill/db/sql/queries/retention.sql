-- Job retention: old completed jobs, their results and logs deleted in small batches
-- (gristmill.queue.retention).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: retention_try_lock
-- One purger at a time across every server on this database: a session-level advisory lock
-- (released by retention_unlock, or by the session's end if the process dies).
SELECT pg_try_advisory_lock(%(key)s);

-- name: retention_unlock
SELECT pg_advisory_unlock(%(key)s);

-- name: retention_period
-- The instance setting `retention_period_secs` (Windmill's name), when one is stored: it
-- wins over JOB_RETENTION_SECS, as in Windmill.
SELECT value FROM instance_setting WHERE name = 'retention_period_secs';

-- name: retention_delete_batch
-- Delete jobs completed before the retention period, oldest first, with their history row,
-- result, log and the rows that hang off the job (ON DELETE CASCADE). The `batch` oldest
-- candidates from `floor` on are taken in completed_at order (an index walk that stops at
-- the batch's end; rows another transaction holds are skipped, not waited for); of those,
-- kept: a step (or child) of a flow whose run is not over (its root, or its parent when it
-- has no root, is still in the queue: the flow still reads its steps' results), and a
-- schedule's run whose end is not handled yet. Queued and running jobs are never candidates
-- (they are not in job_completed). One row: how many jobs were deleted, how many candidates
-- were looked at (fewer than `batch`: none left), and the newest completed_at among them:
-- the next batch's `floor`, so that kept rows are not looked at again in this pass (but
-- those of that very instant).
WITH candidates AS MATERIALIZED (
    SELECT c.id, c.completed_at
    FROM job_completed c
    WHERE c.completed_at < now() - make_interval(secs => %(retention_s)s)
      AND c.completed_at >= %(floor)s
    ORDER BY c.completed_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), owned AS MATERIALIZED (
    -- The flow each candidate belongs to, looked up per candidate by key (a subquery in the
    -- select list: never a join that could read the whole `job` table).
    SELECT
        cand.id,
        (SELECT coalesce(j.root_job, j.parent_job) FROM job j WHERE j.id = cand.id) AS flow
    FROM candidates cand
), doomed AS MATERIALIZED (
    SELECT o.id FROM owned o
    WHERE NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.id = o.flow)
      -- A run without its job would be taken for one never pushed (and pushed again).
      AND NOT EXISTS (
          SELECT 1 FROM schedule_run r WHERE r.job_id = o.id AND r.handled_at IS NULL
      )
), logs AS (
    -- job_log and job_secret_read have no foreign key to job (written on the hot path).
    DELETE FROM job_log WHERE job_id IN (SELECT id FROM doomed)
), secrets AS (
    DELETE FROM job_secret_read WHERE job_id IN (SELECT id FROM doomed)
), ticks AS (
    -- The schedules' ledger of those runs (handled: nothing reads it without the job).
    DELETE FROM schedule_run WHERE job_id IN (SELECT id FROM doomed)
), jobs AS (
    DELETE FROM job WHERE id IN (SELECT id FROM doomed)
    RETURNING id
)
SELECT
    (SELECT count(*) FROM jobs) AS deleted,
    (SELECT count(*) FROM candidates) AS examined,
    (SELECT max(completed_at) FROM candidates) AS reached;
