-- The job queue: inserting, claiming, completing, cancelling and reading jobs and logs.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: push_job
-- Insert a job and queue it. Workers listening on the queue channel are notified at commit
-- (unless the job is scheduled for later: the idle workers' polling picks it up then).
-- With `live_hash` set, nothing is inserted unless that script version is still the live
-- one at its path (the caller used a cached copy of it); no row comes back then.
WITH j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, runnable_hash, language, raw_code, raw_schema, raw_lock,
        args, tag, priority, timeout, created_by, permissioned_as, email, parent_job,
        root_job, trigger_kind, trigger, flow_step_id, permissioned_scopes, idempotency_key
    )
    SELECT
        %(id)s, %(workspace_id)s, %(kind)s, %(runnable_path)s, %(runnable_hash)s,
        %(language)s, %(raw_code)s, %(raw_schema)s, %(raw_lock)s, %(args)s, %(tag)s, %(priority)s,
        %(timeout)s, %(created_by)s, %(permissioned_as)s, %(email)s, %(parent_job)s,
        %(root_job)s, %(trigger_kind)s, %(trigger)s, %(flow_step_id)s, %(permissioned_scopes)s,
        %(idempotency_key)s
    WHERE %(live_hash)s::bigint IS NULL OR EXISTS (
        SELECT 1 FROM script
        WHERE workspace_id = %(workspace_id)s AND hash = %(live_hash)s
          AND NOT archived AND NOT deleted
    )
    -- A job id or Idempotency-Key taken already (a retried request) inserts nothing and
    -- returns no row; enqueue.py then reads the job it names (no extra statement otherwise).
    ON CONFLICT DO NOTHING
    RETURNING id
), audit AS (
    -- The run's audit entry (`jobs.run.script` / `jobs.run.preview`), in the same statement:
    -- no extra round trip on the hot submit path, and never a job without its entry.
    INSERT INTO audit (workspace_id, username, operation, action_kind, resource, parameters)
    SELECT %(workspace_id)s, %(created_by)s, %(audit_operation)s, 'Execute',
        coalesce(%(runnable_path)s, id::text), jsonb_build_object('job_id', id)
    FROM j WHERE %(audit_operation)s::text IS NOT NULL
), q AS (
    INSERT INTO job_queue (id, workspace_id, tag, priority, scheduled_for)
    SELECT id, %(workspace_id)s, %(tag)s, %(priority)s, coalesce(%(scheduled_for)s, now())
    FROM j
    RETURNING id, scheduled_for
)
SELECT id, CASE WHEN scheduled_for <= now() THEN pg_notify('gristmill_queue', %(tag)s) END
FROM q;

-- name: push_running_job
-- Insert a job already claimed by an idle worker of this process (a standalone process
-- hands a new job straight to its own idle worker: no notification, no claim query).
-- `live_hash` guards as in push_job.
WITH j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, runnable_hash, language, raw_code, raw_schema, raw_lock,
        args, tag, priority, timeout, created_by, permissioned_as, email, parent_job,
        root_job, trigger_kind, trigger, flow_step_id, permissioned_scopes, idempotency_key
    )
    SELECT
        %(id)s, %(workspace_id)s, %(kind)s, %(runnable_path)s, %(runnable_hash)s,
        %(language)s, %(raw_code)s, %(raw_schema)s, %(raw_lock)s, %(args)s, %(tag)s, %(priority)s,
        %(timeout)s, %(created_by)s, %(permissioned_as)s, %(email)s, %(parent_job)s,
        %(root_job)s, %(trigger_kind)s, %(trigger)s, %(flow_step_id)s, %(permissioned_scopes)s,
        %(idempotency_key)s
    WHERE %(live_hash)s::bigint IS NULL OR EXISTS (
        SELECT 1 FROM script
        WHERE workspace_id = %(workspace_id)s AND hash = %(live_hash)s
          AND NOT archived AND NOT deleted
    )
    -- A job id or Idempotency-Key taken already (a retried request) inserts nothing and
    -- returns no row; enqueue.py then reads the job it names (no extra statement otherwise).
    ON CONFLICT DO NOTHING
    RETURNING id
), audit AS (
    -- The run's audit entry (`jobs.run.script` / `jobs.run.preview`), in the same statement:
    -- no extra round trip on the hot submit path, and never a job without its entry.
    INSERT INTO audit (workspace_id, username, operation, action_kind, resource, parameters)
    SELECT %(workspace_id)s, %(created_by)s, %(audit_operation)s, 'Execute',
        coalesce(%(runnable_path)s, id::text), jsonb_build_object('job_id', id)
    FROM j WHERE %(audit_operation)s::text IS NOT NULL
), q AS (
    INSERT INTO job_queue (id, workspace_id, tag, priority, running, started_at, ping, worker)
    SELECT id, %(workspace_id)s, %(tag)s, %(priority)s, true, now(), now(), %(worker)s FROM j
    RETURNING started_at
)
-- The parent flow's id and path, for the job's WM_FLOW_JOB_ID and WM_FLOW_PATH.
SELECT q.started_at, p.id AS flow_job_id, p.runnable_path AS flow_path
FROM q
LEFT JOIN job p ON p.id = %(parent_job)s::uuid AND p.kind IN ('flow', 'flowpreview', 'flownode');

-- name: find_submitted_job
-- The jobs a run request names by its `job_id` (in any workspace: the id is global) or by its
-- Idempotency-Key (in its workspace): read only when the push inserted nothing. At most two.
SELECT id, workspace_id, kind, runnable_path, runnable_hash, raw_code, raw_flow, args,
    permissioned_as, idempotency_key
FROM job
WHERE id = %(id)s
   OR (%(idempotency_key)s::text IS NOT NULL AND workspace_id = %(workspace_id)s
       AND idempotency_key = %(idempotency_key)s);

-- name: count_queued
SELECT count(*) FROM job_queue WHERE NOT running AND workspace_id = %(workspace_id)s;

-- name: claim_job
-- Take the most urgent due job of the given tags, skipping rows other workers are taking.
-- Returns all a worker needs to run it, including where its log continues (a job restarted
-- after its worker died keeps the log of the first attempt). Always one row: with nothing
-- to claim, its job columns are NULL and `next_due` says when the earliest job of these
-- tags scheduled for later becomes due (the worker's sleep; one round trip, not two).
WITH next AS (
    SELECT id FROM job_queue
    WHERE NOT running AND scheduled_for <= now()
      -- A step of a same_worker flow (migration 0012) pinned to one worker is taken only
      -- by that worker, whatever its tag (a missing runtime fails it at once rather than
      -- leaving the flow waiting forever); others (pin NULL, or '*': a same_worker step any
      -- worker may take) only by a worker serving their tag. Flow jobs (tag `flow`) are
      -- never a worker's: one waiting for its concurrency slot is queued, not running, and
      -- must stay out of reach even of a worker given that tag.
      AND (((worker_pin IS NULL OR worker_pin = '*') AND tag = ANY(%(tags)s) AND tag <> 'flow')
           OR worker_pin = %(worker)s)
    ORDER BY priority DESC NULLS LAST, scheduled_for
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE job_queue q
    SET running = true, started_at = now(), ping = now(), worker = %(worker)s
    FROM next
    WHERE q.id = next.id
    RETURNING q.id, q.started_at, q.worker_pin, q.scheduled_for
), job AS (
SELECT
    j.id, j.workspace_id, j.kind, j.runnable_path, j.runnable_hash, j.language,
    coalesce(j.raw_code, s.content) AS code,
    coalesce(j.raw_schema, s.schema) AS schema,
    CASE WHEN j.raw_code IS NOT NULL THEN j.raw_lock ELSE s.lock END AS lock,
    s.lock_error_logs,
    j.args, j.timeout, j.created_by, j.permissioned_as, j.email, j.parent_job, j.root_job,
    j.trigger, j.trigger_kind, j.flow_step_id, p.id AS flow_job_id, p.runnable_path AS flow_path,
    -- A step of a same_worker flow: run in the flow's directory, with its `./shared`.
    claimed.worker_pin IS NOT NULL AS same_worker,
    claimed.started_at,
    -- A schedule's tick (WM_SCHEDULED_FOR).
    claimed.scheduled_for,
    (SELECT coalesce(max(l.log_offset + char_length(l.content)), 0)
     FROM job_log l WHERE l.job_id = j.id) AS log_offset
FROM claimed
JOIN job j USING (id)
LEFT JOIN script s ON s.workspace_id = j.workspace_id AND s.hash = j.runnable_hash
-- The parent, when it is a flow: the job is one of its steps (WM_FLOW_JOB_ID, WM_FLOW_PATH).
LEFT JOIN job p ON p.id = j.parent_job AND p.kind IN ('flow', 'flowpreview', 'flownode')
)
SELECT job.*, due.next_due
FROM (
    SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM claimed) THEN (
        SELECT min(scheduled_for) FROM job_queue
        WHERE NOT running AND tag = ANY(%(tags)s) AND scheduled_for > now()
    ) END AS next_due
) due
LEFT JOIN job ON true;

-- name: append_log
INSERT INTO job_log (job_id, log_offset, content)
VALUES (%(id)s, %(log_offset)s, %(content)s)
ON CONFLICT DO NOTHING;

-- name: complete_job
-- Move a running job to the history, only if this worker still holds it (a job restarted
-- after its worker was presumed dead is not completed twice), with the end of its log.
-- With `unmasked` (the log's end was not masked: the worker knew of no secret the job read),
-- nothing is written if the job did read a secret (`clean` false: the worker masks the log
-- and completes again); a job that read none, the common case, needs no look-up before.
-- One row: `clean`, and `done` (1 when the job was completed, 0 when it was not held).
-- `started_at` (when given) names the attempt: the claim that started it sets it, a
-- requeue clears it. A result recorded late (held through a database outage, or spooled
-- by a worker process since restarted) applies only to the attempt that produced it, even
-- if a worker of the same name took the job again meanwhile.
WITH clean AS (
    SELECT NOT %(unmasked)s OR NOT EXISTS (
        SELECT 1 FROM job_secret_read WHERE job_id = %(id)s
    ) AS ok
), q AS (
    DELETE FROM job_queue
    WHERE id = %(id)s AND worker = %(worker)s AND running AND (SELECT ok FROM clean)
      AND (%(started_at)s::timestamptz IS NULL OR started_at = %(started_at)s)
    RETURNING id, workspace_id, started_at, canceled_by, canceled_reason
), logs AS (
    INSERT INTO job_log (job_id, log_offset, content)
    SELECT id, %(log_offset)s, %(logs)s FROM q WHERE %(logs)s::text <> ''
    ON CONFLICT DO NOTHING
), c AS (
    INSERT INTO job_completed (
        id, workspace_id, status, result, started_at, duration_ms, worker, canceled_by,
        canceled_reason
    )
    SELECT
        id, workspace_id, %(status)s, %(result)s::jsonb, started_at,
        greatest(0, (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint),
        %(worker)s, canceled_by, canceled_reason
    FROM q
    RETURNING id, status, result
)
SELECT
    (SELECT ok FROM clean) AS clean,
    -- A small result travels in the notification itself: a waiting caller needs no query.
    (SELECT count(*) FROM (
        SELECT pg_notify(
            'gristmill_job_done',
            CASE WHEN octet_length(%(result)s::text) <= 7000
                THEN id::text || ' ' || status || ' ' || %(result)s
                ELSE id::text
            END
        ) FROM c
    ) notified) AS done;

-- name: requeue_job
-- Give a running job back to the queue (its worker is stopping before it could finish).
UPDATE job_queue
SET running = false, started_at = NULL, worker = NULL, ping = NULL
WHERE id = %(id)s AND worker = %(worker)s AND running
RETURNING pg_notify('gristmill_queue', tag);

-- name: heartbeat
-- Mark a worker's running jobs alive; returns those it still holds, with cancel requests.
UPDATE job_queue SET ping = now()
WHERE id = ANY(%(ids)s) AND worker = %(worker)s AND running
RETURNING id, canceled_by, canceled_reason;

-- name: cancel_queued_job
-- Cancel a job no worker has started: it goes straight to the history.
WITH q AS (
    DELETE FROM job_queue
    WHERE id = %(id)s AND workspace_id = %(workspace_id)s AND NOT running
    RETURNING id, workspace_id
), c AS (
    INSERT INTO job_completed (id, workspace_id, status, result, canceled_by, canceled_reason)
    SELECT id, workspace_id, 'canceled', %(result)s::jsonb, %(canceled_by)s, %(reason)s FROM q
    RETURNING id
)
SELECT id, pg_notify('gristmill_job_done', id::text) FROM c;

-- name: cancel_running_job
-- Ask the worker running a job to stop it; the worker completes it as canceled.
UPDATE job_queue
SET canceled_by = %(canceled_by)s, canceled_reason = %(reason)s
WHERE id = %(id)s AND workspace_id = %(workspace_id)s AND running
RETURNING id, pg_notify('gristmill_job_cancel', id::text);

-- name: restart_zombies
-- Give jobs whose worker stopped answering back to the queue. A ping counts as no older
-- than the server's own start: the time the database was down is no worker's silence (its
-- workers could not ping a stopped server).
UPDATE job_queue
SET running = false, started_at = NULL, worker = NULL, ping = NULL
WHERE running AND ping < now() - make_interval(secs => %(timeout_s)s)
  AND pg_postmaster_start_time() < now() - make_interval(secs => %(timeout_s)s)
RETURNING id, worker, pg_notify('gristmill_queue', tag);

-- name: fail_zombies
-- Fail jobs whose worker stopped answering (RESTART_ZOMBIE_JOBS=false); a ping counts as
-- no older than the server's start, as in restart_zombies.
WITH q AS (
    DELETE FROM job_queue
    WHERE running AND ping < now() - make_interval(secs => %(timeout_s)s)
      AND pg_postmaster_start_time() < now() - make_interval(secs => %(timeout_s)s)
    RETURNING id, workspace_id, started_at, worker
), c AS (
    INSERT INTO job_completed (id, workspace_id, status, result, started_at, duration_ms, worker)
    SELECT
        id, workspace_id, 'failure',
        jsonb_build_object('error', jsonb_build_object(
            'name', 'ZombieJob',
            'message', format(
                'the worker %%s running this job stopped answering for more than %%s s; '
                'it was not restarted because RESTART_ZOMBIE_JOBS is false',
                worker, %(timeout_s)s))),
        started_at,
        greatest(0, (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint),
        worker
    FROM q
    RETURNING id
)
SELECT id, pg_notify('gristmill_job_done', id::text) FROM c;

-- name: get_job
-- A job with its queue or history state (exactly one of the two exists).
SELECT
    j.id, j.workspace_id, j.kind, j.runnable_path, j.runnable_hash, j.language,
    j.raw_code, j.args, j.tag, j.priority, j.timeout, j.created_by, j.permissioned_as,
    j.email, j.parent_job, j.root_job, j.created_at, j.trigger, j.trigger_kind, j.flow_step_id,
    j.raw_flow,
    q.id IS NOT NULL AS queued, q.running, q.scheduled_for, q.worker AS queue_worker,
    q.ping, q.canceled_by AS queue_canceled_by, q.canceled_reason AS queue_canceled_reason,
    coalesce(q.started_at, c.started_at) AS started_at,
    c.status, c.result, c.completed_at, c.duration_ms, c.worker AS completed_worker,
    c.canceled_by, c.canceled_reason,
    (SELECT s.flow_status FROM job_flow_status s WHERE s.id = j.id) AS flow_status
FROM job j
LEFT JOIN job_queue q ON q.id = j.id
LEFT JOIN job_completed c ON c.id = j.id
WHERE j.id = %(id)s AND j.workspace_id = %(workspace_id)s;

-- name: get_completed
-- A finished job's status and result as JSON text (not parsed: it is sent on as it is).
-- With who the job ran as and its path, to check the caller may see it.
SELECT c.status, c.result::text AS result, j.permissioned_as, j.runnable_path
FROM job_completed c JOIN job j USING (id)
WHERE c.id = %(id)s AND c.workspace_id = %(workspace_id)s;

-- name: get_job_state
SELECT
    EXISTS (SELECT 1 FROM job WHERE id = %(id)s AND workspace_id = %(workspace_id)s) AS exists,
    (SELECT running FROM job_queue WHERE id = %(id)s) AS running,
    (SELECT status FROM job_completed WHERE id = %(id)s) AS status,
    (SELECT result::text FROM job_completed WHERE id = %(id)s) AS result,
    (SELECT permissioned_as FROM job WHERE id = %(id)s AND workspace_id = %(workspace_id)s)
        AS permissioned_as,
    (SELECT runnable_path FROM job WHERE id = %(id)s AND workspace_id = %(workspace_id)s)
        AS runnable_path;

-- name: get_logs
SELECT coalesce(string_agg(content, '' ORDER BY log_offset), '') FROM job_log
WHERE job_id = %(id)s;

-- name: get_logs_since
SELECT log_offset, content FROM job_log
WHERE job_id = %(id)s AND log_offset + char_length(content) > %(log_offset)s
ORDER BY log_offset;

-- name: list_jobs
-- Queued and running jobs first, then the history; newest first within each.
-- Each part is filtered, ordered and cut to the page's end on its own, so that the history's
-- part walks an index of `job` in created_at order (job_by_created, or the index of the
-- filter given: job_by_path, job_by_created_by, job_by_trigger...) and stops after
-- `offset + limit` rows, however large the history (a filter applied above the union would
-- sort the whole history first). The filters are the same in both parts (kept in step by
-- hand); each left out (NULL) folds away when the statement is planned: it is never
-- prepared (gristmill.queue.rows.list_jobs).
(
    SELECT
        j.id, j.workspace_id, j.kind, j.runnable_path, j.runnable_hash, j.language,
        j.tag, j.priority, j.created_by, j.permissioned_as, j.email, j.parent_job,
        j.flow_step_id, j.trigger_kind, j.trigger,
        j.created_at, true AS queued, q.running, q.scheduled_for, q.started_at,
        NULL::text AS status, NULL::bigint AS duration_ms, q.canceled_by, q.canceled_reason
    FROM job_queue q JOIN job j USING (id)
    WHERE q.workspace_id = %(workspace_id)s AND NOT %(completed_only)s
      AND (%(success)s::boolean IS NULL)
      AND (%(running)s::boolean IS NULL OR q.running = %(running)s)
      AND (%(path_exact)s::text IS NULL OR j.runnable_path = %(path_exact)s)
      -- A prefix pattern with its wildcards escaped (like_prefix).
      AND (%(path_like)s::text IS NULL OR j.runnable_path LIKE %(path_like)s ESCAPE '\')
      AND (%(script_hash)s::bigint IS NULL OR j.runnable_hash = %(script_hash)s)
      AND (%(created_by)s::text IS NULL OR j.created_by = %(created_by)s)
      AND (%(created_before)s::timestamptz IS NULL OR j.created_at < %(created_before)s)
      AND (%(created_after)s::timestamptz IS NULL OR j.created_at > %(created_after)s)
      AND (%(job_kinds)s::text[] IS NULL OR j.kind = ANY(%(job_kinds)s))
      AND (%(tag)s::text IS NULL OR j.tag = %(tag)s)
      AND (%(parent_job)s::uuid IS NULL OR j.parent_job = %(parent_job)s)
      -- Windmill's `trigger_kind` and `schedule_path` filters (a schedule's runs).
      AND (%(trigger_kind)s::text IS NULL OR j.trigger_kind = %(trigger_kind)s)
      AND (%(trigger)s::text IS NULL OR j.trigger = %(trigger)s)
      -- What the caller may see: admins all; others the jobs run as them (or one of their
      -- groups) and the runs of items they may read (gristmill.queue.visibility, same rule).
      AND (%(is_admin)s OR j.permissioned_as = ANY(%(owners)s)
           OR (j.runnable_path IS NOT NULL
               AND gm_can_read(j.runnable_path, '{}'::jsonb, false, %(owners)s, %(folders_read)s)))
    ORDER BY j.created_at DESC
    LIMIT %(limit)s + %(offset)s
)
UNION ALL
(
    SELECT
        j.id, j.workspace_id, j.kind, j.runnable_path, j.runnable_hash, j.language,
        j.tag, j.priority, j.created_by, j.permissioned_as, j.email, j.parent_job,
        j.flow_step_id, j.trigger_kind, j.trigger,
        j.created_at, false AS queued, false AS running, NULL AS scheduled_for,
        c.started_at, c.status, c.duration_ms, c.canceled_by, c.canceled_reason
    FROM job j JOIN job_completed c USING (id)
    WHERE j.workspace_id = %(workspace_id)s AND NOT %(queued_only)s
      AND (%(running)s::boolean IS NULL OR NOT %(running)s)
      AND (%(success)s::boolean IS NULL OR (c.status = 'success') = %(success)s)
      AND (%(path_exact)s::text IS NULL OR j.runnable_path = %(path_exact)s)
      -- A prefix pattern with its wildcards escaped (like_prefix).
      AND (%(path_like)s::text IS NULL OR j.runnable_path LIKE %(path_like)s ESCAPE '\')
      AND (%(script_hash)s::bigint IS NULL OR j.runnable_hash = %(script_hash)s)
      AND (%(created_by)s::text IS NULL OR j.created_by = %(created_by)s)
      AND (%(created_before)s::timestamptz IS NULL OR j.created_at < %(created_before)s)
      AND (%(created_after)s::timestamptz IS NULL OR j.created_at > %(created_after)s)
      AND (%(job_kinds)s::text[] IS NULL OR j.kind = ANY(%(job_kinds)s))
      AND (%(tag)s::text IS NULL OR j.tag = %(tag)s)
      AND (%(parent_job)s::uuid IS NULL OR j.parent_job = %(parent_job)s)
      -- Windmill's `trigger_kind` and `schedule_path` filters (a schedule's runs).
      AND (%(trigger_kind)s::text IS NULL OR j.trigger_kind = %(trigger_kind)s)
      AND (%(trigger)s::text IS NULL OR j.trigger = %(trigger)s)
      -- What the caller may see: admins all; others the jobs run as them (or one of their
      -- groups) and the runs of items they may read (gristmill.queue.visibility, same rule).
      AND (%(is_admin)s OR j.permissioned_as = ANY(%(owners)s)
           OR (j.runnable_path IS NOT NULL
               AND gm_can_read(j.runnable_path, '{}'::jsonb, false, %(owners)s, %(folders_read)s)))
    ORDER BY j.created_at DESC
    LIMIT %(limit)s + %(offset)s
)
ORDER BY queued DESC, created_at DESC
LIMIT %(limit)s OFFSET %(offset)s;

-- name: push_failed_job
-- Record a job that cannot run anywhere straight into the history, as failed.
WITH j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, runnable_hash, language, raw_code, raw_schema, raw_lock,
        args, tag, priority, timeout, created_by, permissioned_as, email, parent_job,
        root_job, trigger_kind, trigger, flow_step_id, permissioned_scopes, idempotency_key
    ) VALUES (
        %(id)s, %(workspace_id)s, %(kind)s, %(runnable_path)s, %(runnable_hash)s,
        %(language)s, %(raw_code)s, %(raw_schema)s, %(raw_lock)s, %(args)s, %(tag)s, %(priority)s,
        %(timeout)s, %(created_by)s, %(permissioned_as)s, %(email)s, %(parent_job)s,
        %(root_job)s, %(trigger_kind)s, %(trigger)s, %(flow_step_id)s, %(permissioned_scopes)s,
        %(idempotency_key)s
    )
    -- A retried request: no row, as in push_job.
    ON CONFLICT DO NOTHING
    RETURNING id, workspace_id
), audit AS (
    -- The run's audit entry (`jobs.run.script` / `jobs.run.preview`), in the same statement:
    -- no extra round trip on the hot submit path, and never a job without its entry.
    INSERT INTO audit (workspace_id, username, operation, action_kind, resource, parameters)
    SELECT %(workspace_id)s, %(created_by)s, %(audit_operation)s, 'Execute',
        coalesce(%(runnable_path)s, id::text), jsonb_build_object('job_id', id)
    FROM j WHERE %(audit_operation)s::text IS NOT NULL
)
INSERT INTO job_completed (id, workspace_id, status, result, started_at, duration_ms)
SELECT id, workspace_id, 'failure', %(result)s::jsonb, now(), 0 FROM j
RETURNING id;

-- name: get_live_job_for_token
-- A queued or running job (a job token is valid only then): its workspace, the scopes it
-- inherited, and its path (for its state path).
SELECT j.workspace_id, j.permissioned_scopes, j.runnable_path, j.trigger, j.trigger_kind,
    j.flow_step_id, p.runnable_path AS flow_path
FROM job_queue q JOIN job j USING (id)
LEFT JOIN job p ON p.id = j.parent_job AND p.kind IN ('flow', 'flowpreview', 'flownode')
WHERE q.id = %(id)s;

-- name: get_cancel_request
-- Who asked to cancel a running job, and why.
SELECT canceled_by, canceled_reason FROM job_queue WHERE id = %(id)s;

-- name: get_job_chain
-- A job's ancestors through `parent_job`, nearest first (bounded: a chain is never a cycle,
-- but a row inserted by hand could make one).
WITH RECURSIVE chain(id, parent_job, depth) AS (
    SELECT id, parent_job, 0 FROM job WHERE id = %(id)s AND workspace_id = %(workspace_id)s
    UNION ALL
    SELECT j.id, j.parent_job, c.depth + 1
    FROM chain c JOIN job j ON j.id = c.parent_job AND j.workspace_id = %(workspace_id)s
    WHERE c.depth < 1000
)
SELECT id FROM chain ORDER BY depth DESC LIMIT 1;

-- name: get_job_identity
-- Who a job runs as, its path, its parent and whether it still runs: for visibility checks.
SELECT j.permissioned_as, j.runnable_path, j.parent_job, q.id IS NOT NULL AS queued
FROM job j LEFT JOIN job_queue q USING (id)
WHERE j.id = %(id)s AND j.workspace_id = %(workspace_id)s;

-- name: set_job_progress
-- Record a job's progress (0-100); only while the job is queued or running.
INSERT INTO job_progress (job_id, percent)
SELECT id, %(percent)s FROM job_queue WHERE id = %(id)s AND workspace_id = %(workspace_id)s
ON CONFLICT (job_id) DO UPDATE SET percent = excluded.percent, updated_at = now()
RETURNING job_id;

-- name: get_job_progress
SELECT percent FROM job_progress WHERE job_id = %(id)s;

-- name: database_answers
-- Whether the database answers (the pool's probe during an outage, the zombie monitor after one).
SELECT 1;
