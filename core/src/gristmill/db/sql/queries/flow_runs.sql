-- Running flows: the flow job (never held by a worker), its status, its steps' jobs.
-- Each block starts with `-- name: <name>`; see gristmill.flows.engine.

-- name: push_flow_job
-- Insert a flow job, already "running" and held by no worker: workers claim only jobs that
-- are not running, and the zombie monitor only jobs with a heartbeat, so neither touches it.
-- Its status row is inserted with it. A child flow job (a sub-flow, a parallel iteration)
-- has its parent flow and step; its id is the engine's, so inserting it again (a decision
-- applied twice) inserts nothing and returns no row, as does a root id or key taken already.
WITH j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, raw_flow, args, tag, created_by,
        permissioned_as, email, parent_job, root_job, flow_step_id, permissioned_scopes,
        timeout, trigger_kind, trigger, idempotency_key
    ) VALUES (
        %(id)s, %(workspace_id)s, %(kind)s, %(runnable_path)s, %(raw_flow)s, %(args)s, 'flow',
        %(created_by)s, %(permissioned_as)s, %(email)s, %(parent_job)s, %(root_job)s,
        %(flow_step_id)s, %(permissioned_scopes)s, %(timeout)s, %(trigger_kind)s, %(trigger)s,
        %(idempotency_key)s
    )
    -- No target: a root flow's Idempotency-Key taken already (migration 0015) is a conflict too.
    ON CONFLICT DO NOTHING
    RETURNING id
), audit AS (
    INSERT INTO audit (workspace_id, username, operation, action_kind, resource, parameters)
    SELECT %(workspace_id)s, %(created_by)s, %(operation)s, 'Execute',
        coalesce(%(runnable_path)s, id::text), jsonb_build_object('job_id', id)
    FROM j
), s AS (
    INSERT INTO job_flow_status (id, workspace_id, flow_status)
    SELECT id, %(workspace_id)s, %(flow_status)s FROM j
)
INSERT INTO job_queue (id, workspace_id, tag, running, started_at)
SELECT id, %(workspace_id)s, 'flow', true, now() FROM j
RETURNING id;

-- name: lock_flow_run
-- A flow job with its status, locked for one decision; nothing when it has ended (its
-- queue row is gone: completed or canceled).
SELECT j.id, j.workspace_id, j.raw_flow, j.args, j.created_by, j.permissioned_as, j.email,
    j.permissioned_scopes, j.root_job, j.parent_job, j.runnable_path, s.flow_status
FROM job_flow_status s
JOIN job j USING (id)
JOIN job_queue q USING (id)
WHERE s.id = %(id)s
FOR UPDATE OF s;

-- name: save_flow_status
UPDATE job_flow_status SET flow_status = %(flow_status)s, awaiting = %(awaiting)s
WHERE id = %(id)s;

-- name: push_flow_step
-- A step's job. Its id is the engine's (derived from the flow's id and a counter): a
-- decision applied again after a crash inserts nothing the second time.
WITH j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, runnable_hash, language, raw_code, raw_schema,
        raw_lock, args, tag, timeout, created_by, permissioned_as, email, parent_job,
        root_job, flow_step_id, permissioned_scopes
    ) VALUES (
        %(id)s, %(workspace_id)s, %(kind)s, %(runnable_path)s, %(runnable_hash)s,
        %(language)s, %(raw_code)s, %(raw_schema)s, %(raw_lock)s, %(args)s, %(tag)s,
        %(timeout)s, %(created_by)s, %(permissioned_as)s, %(email)s, %(parent_job)s,
        %(root_job)s, %(flow_step_id)s, %(permissioned_scopes)s
    )
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), q AS (
    INSERT INTO job_queue (id, workspace_id, tag, priority, scheduled_for)
    SELECT id, %(workspace_id)s, %(tag)s, NULL,
        now() + make_interval(secs => %(delay_s)s)
    FROM j
    RETURNING id, scheduled_for
)
SELECT id, CASE WHEN scheduled_for <= now() THEN pg_notify('gristmill_queue', %(tag)s) END
FROM q;

-- name: push_failed_flow_step
-- A step that cannot run (its script is gone...): recorded as failed at once.
WITH j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, args, tag, created_by, permissioned_as, email,
        parent_job, root_job, flow_step_id, permissioned_scopes
    ) VALUES (
        %(id)s, %(workspace_id)s, %(kind)s, %(runnable_path)s, %(args)s, %(tag)s,
        %(created_by)s, %(permissioned_as)s, %(email)s, %(parent_job)s, %(root_job)s,
        %(flow_step_id)s, %(permissioned_scopes)s
    )
    ON CONFLICT (id) DO NOTHING
    RETURNING id, workspace_id
)
INSERT INTO job_completed (id, workspace_id, status, result, started_at, duration_ms)
SELECT id, workspace_id, 'failure', %(result)s::jsonb, now(), 0 FROM j
RETURNING id;

-- name: complete_flow_job
-- End a flow job (its queue row goes to the history); its waiters are notified at commit.
WITH q AS (
    DELETE FROM job_queue WHERE id = %(id)s
    RETURNING id, workspace_id, started_at
), c AS (
    INSERT INTO job_completed (id, workspace_id, status, result, started_at, duration_ms)
    SELECT id, workspace_id, %(status)s, %(result)s::jsonb, started_at,
        greatest(0, (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint)
    FROM q
    RETURNING id, status
)
SELECT pg_notify(
    'gristmill_job_done',
    CASE WHEN octet_length(%(result)s::text) <= 7000
        THEN id::text || ' ' || status || ' ' || %(result)s
        ELSE id::text
    END
) FROM c;

-- name: get_completed_for_flow
-- A completed job's outcome, for the engine (status, result).
SELECT status, result FROM job_completed WHERE id = %(id)s;

-- name: stalled_flows
-- Flows still running whose awaited job has completed: their advance was lost (a crash
-- between the step's completion and the flow's decision, or a completion outside the
-- worker: a canceled or zombie step). The monitor advances them.
SELECT s.id, s.awaiting FROM job_flow_status s
JOIN job_completed c ON c.id = s.awaiting
JOIN job_queue q ON q.id = s.id
LIMIT 100;

-- name: get_flow_status
SELECT flow_status FROM job_flow_status WHERE id = %(id)s;

-- name: lock_flow_for_cancel
-- A running flow job's status row, locked to cancel it (nothing when it is no flow or ended).
SELECT s.id FROM job_flow_status s JOIN job_queue q USING (id)
WHERE s.id = %(id)s AND s.workspace_id = %(workspace_id)s
FOR UPDATE OF s;

-- name: cancel_flow_job
-- Cancel a flow: its job goes to the history as canceled, its status stops waiting.
WITH st AS (
    UPDATE job_flow_status
    SET awaiting = NULL,
        flow_status = jsonb_set(flow_status, '{engine,finished}', 'true'::jsonb)
    WHERE id = %(id)s
), q AS (
    DELETE FROM job_queue WHERE id = %(id)s AND workspace_id = %(workspace_id)s
    RETURNING id, workspace_id, started_at
), c AS (
    INSERT INTO job_completed (
        id, workspace_id, status, result, started_at, duration_ms, canceled_by, canceled_reason
    )
    SELECT id, workspace_id, 'canceled', %(result)s::jsonb, started_at,
        greatest(0, (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint),
        %(canceled_by)s, %(reason)s
    FROM q
    RETURNING id
)
SELECT id, pg_notify('gristmill_job_done', id::text) FROM c;

-- name: flow_children_queued
-- The steps' jobs of a flow still in the queue (to cancel with it).
SELECT j.id, q.running FROM job j JOIN job_queue q USING (id)
WHERE j.parent_job = %(id)s;

-- name: timed_out_flows
-- Flows still running past their timeout (a saved flow's): the monitor ends them.
SELECT s.id, j.timeout FROM job_flow_status s
JOIN job j USING (id)
JOIN job_queue q USING (id)
WHERE j.timeout IS NOT NULL
  AND q.started_at < now() - make_interval(secs => j.timeout)
LIMIT 100;
