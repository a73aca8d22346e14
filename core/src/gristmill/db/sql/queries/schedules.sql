-- Schedules (gristmill.triggers.schedules) and the ledger of their runs (`schedule_run`).
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does.

-- name: sched_insert
-- A new schedule; no row when the path is taken.
INSERT INTO schedule (
    workspace_id, path, schedule, timezone, cron_version, enabled, script_path, is_flow, args,
    summary, description, on_failure, on_failure_times, on_failure_exact,
    on_failure_extra_args, on_recovery, on_recovery_times, on_recovery_extra_args, on_success,
    on_success_extra_args, ws_error_handler_muted, retry, no_flow_overlap, tag, paused_until,
    edited_by, email, permissioned_as, next_tick
) VALUES (
    %(workspace_id)s, %(path)s, %(schedule)s, %(timezone)s, %(cron_version)s, %(enabled)s,
    %(script_path)s, %(is_flow)s, %(args)s, %(summary)s, %(description)s, %(on_failure)s,
    %(on_failure_times)s, %(on_failure_exact)s, %(on_failure_extra_args)s, %(on_recovery)s,
    %(on_recovery_times)s, %(on_recovery_extra_args)s, %(on_success)s,
    %(on_success_extra_args)s, %(ws_error_handler_muted)s, %(retry)s, %(no_flow_overlap)s,
    %(tag)s, %(paused_until)s, %(edited_by)s, %(email)s, %(permissioned_as)s, %(next_tick)s
)
ON CONFLICT (workspace_id, path) DO NOTHING
RETURNING path;

-- name: sched_update
-- Replace what a schedule runs and when (not its path, runnable or enabled flag: Windmill's
-- EditSchedule); the editor becomes who its runs act as; a past error is cleared.
UPDATE schedule SET
    schedule = %(schedule)s, timezone = %(timezone)s,
    cron_version = coalesce(%(cron_version)s, cron_version), args = %(args)s,
    summary = %(summary)s, description = coalesce(%(description)s, description),
    on_failure = %(on_failure)s, on_failure_times = %(on_failure_times)s,
    on_failure_exact = %(on_failure_exact)s, on_failure_extra_args = %(on_failure_extra_args)s,
    on_recovery = %(on_recovery)s, on_recovery_times = %(on_recovery_times)s,
    on_recovery_extra_args = %(on_recovery_extra_args)s, on_success = %(on_success)s,
    on_success_extra_args = %(on_success_extra_args)s,
    ws_error_handler_muted = %(ws_error_handler_muted)s, retry = %(retry)s,
    no_flow_overlap = %(no_flow_overlap)s, tag = %(tag)s, paused_until = %(paused_until)s,
    edited_by = %(edited_by)s, edited_at = now(), email = %(email)s,
    permissioned_as = %(permissioned_as)s, error = NULL,
    next_tick = CASE WHEN enabled THEN %(next_tick)s END
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: sched_set_enabled
-- Enable (from `next_tick`) or disable a schedule; the caller becomes who its runs act as.
UPDATE schedule SET enabled = %(enabled)s, next_tick = %(next_tick)s, error = NULL,
    email = %(email)s, permissioned_as = %(permissioned_as)s
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: sched_get
-- One schedule.
SELECT * FROM schedule WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: sched_lock
-- One schedule, locked until the transaction ends (a save reads, checks, writes).
SELECT * FROM schedule WHERE workspace_id = %(workspace_id)s AND path = %(path)s FOR UPDATE;

-- name: sched_delete
-- Remove a schedule (its ledger stays with the jobs' history).
DELETE FROM schedule WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: sched_list
-- The schedules the caller may read (gm_can_read with Access.sql_params()), most recently
-- edited first, with Windmill's filters (`path` is the runnable's path).
SELECT * FROM schedule
WHERE workspace_id = %(workspace_id)s
  AND (%(script_path)s::text IS NULL OR script_path = %(script_path)s)
  AND (%(is_flow)s::boolean IS NULL OR is_flow = %(is_flow)s)
  AND (%(path_like)s::text IS NULL OR path LIKE %(path_like)s ESCAPE '\')
  AND (%(args)s::jsonb IS NULL OR args @> %(args)s::jsonb)
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY edited_at DESC, path
LIMIT %(limit)s OFFSET %(offset)s;

-- name: sched_recent_jobs
-- The last 20 ended runs of each of some schedules (Windmill's list_with_jobs `jobs`).
SELECT r.schedule_path, c.id, c.status = 'success' AS success, c.duration_ms
FROM unnest(%(paths)s::text[]) AS p(path)
CROSS JOIN LATERAL (
    SELECT r.schedule_path, r.job_id FROM schedule_run r
    JOIN job_completed c ON c.id = r.job_id
    WHERE r.workspace_id = %(workspace_id)s AND r.schedule_path = p.path
    ORDER BY c.started_at DESC NULLS LAST LIMIT 20
) r
JOIN job_completed c ON c.id = r.job_id
ORDER BY r.schedule_path, c.started_at DESC NULLS LAST;

-- name: sched_due
-- The enabled schedules whose next tick has come, locked (another process skips them),
-- with the database's clock (how late each tick is).
SELECT *, now() AS db_now FROM schedule
WHERE next_tick IS NOT NULL AND next_tick <= now()
ORDER BY next_tick
LIMIT 50
FOR UPDATE SKIP LOCKED;

-- name: sched_next_due
-- When the earliest next tick comes, and the database's clock.
SELECT min(next_tick), now() FROM schedule WHERE next_tick IS NOT NULL;

-- name: sched_advance
-- Move a schedule to its next tick, counting the ticks skipped (with why) if any.
UPDATE schedule SET
    next_tick = %(next_tick)s,
    skipped_ticks = skipped_ticks + %(skipped)s,
    last_skip_at = CASE WHEN %(skipped)s > 0 THEN now() ELSE last_skip_at END,
    last_skip_reason = CASE WHEN %(skipped)s > 0 THEN %(reason)s ELSE last_skip_reason END
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: sched_disable_with_error
-- Stop a schedule that cannot run, saying why (shown by get and list).
UPDATE schedule SET enabled = false, next_tick = NULL, error = %(error)s
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: sched_pending_run
-- The schedule's newest run whose job is still queued or running, if any.
SELECT r.job_id, q.running FROM schedule_run r
JOIN job_queue q ON q.id = r.job_id
WHERE r.workspace_id = %(workspace_id)s AND r.schedule_path = %(path)s
ORDER BY r.created_at DESC
LIMIT 1;

-- name: sched_insert_run
-- Record a run of a tick; no row if that run was recorded already (the guard).
INSERT INTO schedule_run (workspace_id, schedule_path, tick, attempt, job_id, runnable_path,
    is_flow)
VALUES (%(workspace_id)s, %(path)s, %(tick)s, %(attempt)s, %(job_id)s, %(runnable_path)s,
    %(is_flow)s)
ON CONFLICT DO NOTHING
RETURNING job_id;

-- name: sched_mark_pushed
-- The run's job is in the queue.
UPDATE schedule_run SET pushed_at = now() WHERE job_id = %(job_id)s;

-- name: sched_unpushed_runs
-- Runs recorded but whose job never reached the queue (the process stopped in between; not
-- those that could not start, which are marked handled), locked: pushed again with the same
-- job id.
SELECT r.*, s.args, s.tag, s.email, s.permissioned_as
FROM schedule_run r
JOIN schedule s ON s.workspace_id = r.workspace_id AND s.path = r.schedule_path
WHERE r.pushed_at IS NULL AND r.handled_at IS NULL
  AND r.created_at < now() - make_interval(secs => %(after_s)s)
  AND NOT EXISTS (SELECT 1 FROM job j WHERE j.id = r.job_id)
LIMIT 20
FOR UPDATE OF r SKIP LOCKED;

-- name: sched_ended_runs
-- Runs that ended and were not handled yet, with their outcome, locked.
SELECT r.workspace_id, r.schedule_path, r.tick, r.attempt, r.job_id, r.runnable_path,
       r.is_flow, c.status, c.result, c.started_at
FROM schedule_run r
JOIN job_completed c ON c.id = r.job_id
WHERE r.handled_at IS NULL
ORDER BY c.completed_at
LIMIT 50
FOR UPDATE OF r SKIP LOCKED;

-- name: sched_mark_handled
-- A run's end was handled; `retried`: another attempt of its tick was queued.
UPDATE schedule_run SET handled_at = now(), retried = %(retried)s WHERE job_id = %(job_id)s;

-- name: sched_previous_outcomes
-- The outcomes of the schedule's latest ticks before this run (each tick's final attempt),
-- newest first: what on_failure_times and on_recovery_times count.
SELECT c.status = 'success' AS success, c.result, c.started_at
FROM schedule_run r
JOIN job_completed c ON c.id = r.job_id
WHERE r.workspace_id = %(workspace_id)s AND r.schedule_path = %(path)s
  AND r.job_id <> %(job_id)s AND r.handled_at IS NOT NULL AND NOT r.retried
ORDER BY r.tick DESC, r.attempt DESC
LIMIT %(limit)s;
