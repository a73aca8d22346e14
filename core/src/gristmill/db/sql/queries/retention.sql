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
-- Delete up to `batch` jobs completed before the retention period, oldest first, with their
-- history row, result, log and the rows that hang off the job (ON DELETE CASCADE). Never a
-- queued or running job (they are not in job_completed), nor a step of a flow whose run is
-- not over (its root, or its parent when it has no root, is still in the queue: the flow
-- still reads its steps' results), nor a schedule's run not handled yet. Rows another transaction holds are skipped, not waited
-- for. `floor`: the newest completed_at the previous batch of this pass reached, so that a
-- kept prefix (steps of long flows) is not walked again at every batch.
-- One row: how many jobs were deleted, and the newest completed_at among them.
WITH doomed AS (
    SELECT c.id, c.completed_at
    FROM job_completed c
    WHERE c.completed_at < now() - make_interval(secs => %(retention_s)s)
      AND c.completed_at >= %(floor)s
      AND NOT EXISTS (
          SELECT 1 FROM job j
          JOIN job_queue q ON q.id = coalesce(j.root_job, j.parent_job)
          WHERE j.id = c.id
      )
      -- Nor a schedule's run whose end is not handled yet: its handlers still read it, and
      -- a run without its job is taken for one never pushed (and pushed again).
      AND NOT EXISTS (
          SELECT 1 FROM schedule_run r WHERE r.job_id = c.id AND r.handled_at IS NULL
      )
    ORDER BY c.completed_at
    LIMIT %(batch)s
    FOR UPDATE OF c SKIP LOCKED
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
SELECT count(*) AS deleted, (SELECT max(completed_at) FROM doomed) AS reached FROM jobs;
