-- Flow controls: cached results (`cache_ttl` of steps and flows) and early results
-- (`early_return`). Each block starts with `-- name: <name>`; see gristmill.flows.engine.

-- name: control_cache_get
-- A cached result younger than the reader's ttl (and not expired: expired rows are ignored
-- until a write deletes them).
SELECT result, job_id FROM flow_cache
WHERE workspace_id = %(workspace_id)s AND digest = %(digest)s AND expires_at > now()
    AND computed_at > now() - make_interval(secs => %(ttl_s)s);

-- name: control_cache_pending
-- Remember that this job's result goes to the cache if it succeeds.
INSERT INTO flow_cache_pending (job_id, workspace_id, digest, ttl_s)
VALUES (%(job_id)s, %(workspace_id)s, %(digest)s, %(ttl_s)s)
ON CONFLICT (job_id) DO NOTHING;

-- name: control_cache_store
-- A job with a pending cache entry ended: on success its result is cached for its ttl
-- (replacing an older one); either way the pending entry goes, with the workspace's expired
-- rows and the pending entries of jobs that ended without reporting here (a canceled flow's).
WITH p AS (
    DELETE FROM flow_cache_pending WHERE job_id = %(job_id)s
    RETURNING workspace_id, digest, ttl_s
), gone AS (
    DELETE FROM flow_cache c USING p
    WHERE c.workspace_id = p.workspace_id AND c.expires_at <= now()
), orphans AS (
    DELETE FROM flow_cache_pending o USING p, job_completed d
    WHERE o.workspace_id = p.workspace_id AND d.id = o.job_id
        AND d.completed_at < now() - interval '1 hour'
)
INSERT INTO flow_cache (workspace_id, digest, result, job_id, computed_at, expires_at)
SELECT workspace_id, digest, %(result)s::jsonb, %(job_id)s, now(),
    now() + make_interval(secs => ttl_s)
FROM p WHERE %(success)s
ON CONFLICT (workspace_id, digest) DO UPDATE
SET result = excluded.result, job_id = excluded.job_id, computed_at = excluded.computed_at,
    expires_at = greatest(flow_cache.expires_at, excluded.expires_at);

-- name: control_push_cached_step
-- A step whose result comes from the cache: its job is recorded as completed at once, with
-- that result and a log line naming the job that computed it (so that `results.<id>`, the
-- status's job ids and the step's history stay as for a step that ran).
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
    RETURNING id, workspace_id
), l AS (
    INSERT INTO job_log (job_id, log_offset, content)
    SELECT id, 0, %(log)s FROM j
)
INSERT INTO job_completed (id, workspace_id, status, result, started_at, duration_ms)
SELECT id, workspace_id, 'success', %(result)s::jsonb, now(), 0 FROM j
RETURNING id;

-- name: control_flow_log
-- A line in a flow job's log (a flow answered from the cache says so).
INSERT INTO job_log (job_id, log_offset, content)
VALUES (%(id)s, 0, %(log)s)
ON CONFLICT DO NOTHING;

-- name: control_early_result
-- The flow's early_return step completed: keep its result and wake whoever waits on the
-- flow (payload `<flow id> early_return <result>` when small; else the waiter reads it
-- here). Only the first time: a decision applied again notifies nothing.
WITH e AS (
    INSERT INTO flow_early_result (id, workspace_id, step_id, result)
    VALUES (%(id)s, %(workspace_id)s, %(step_id)s, %(result)s::jsonb)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
SELECT pg_notify(
    'gristmill_job_done',
    CASE WHEN octet_length(%(result)s::text) <= 7000
        THEN id::text || ' early_return ' || %(result)s
        ELSE id::text
    END
) FROM e;

-- name: control_get_early_result
SELECT result::text FROM flow_early_result WHERE id = %(id)s AND workspace_id = %(workspace_id)s;
