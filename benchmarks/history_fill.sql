-- Test-only data for benchmarks/history.py: completed jobs with their results and logs,
-- inserted straight into the history tables (never run against a real installation).
--
-- One statement per batch: rows `first` .. `first + count - 1` of a history spread over the
-- last 90 days (row 1 the oldest), 20 users, 185 script paths (u/<user>/... and
-- f/team<k>/...); in every hundred rows 5 flows, 5 previews, 10 schedule runs, and 85
-- successes, 12 failures, 3 canceled; a small result and a log of ~300 bytes each. `total` is the size the whole
-- history will have, so that batches inserted one after the other spread it evenly in time.
-- Parameters: %(first)s, %(count)s, %(total)s. (The statements of a WITH all run, each to
-- completion; the foreign keys of the history rows are checked at the statement's end.)
WITH src AS (
    SELECT
        g,
        gen_random_uuid() AS id,
        'user' || (g * 7 %% 20) AS username,
        -- Oldest first; a little jitter so that ties are rare.
        now() - make_interval(days => 90) * (1 - g::double precision / %(total)s)
            - make_interval(secs => random() * 60) AS created_at,
        (random() * 2000)::bigint AS duration_ms,
        g %% 100 AS bucket
    FROM generate_series(%(first)s::bigint, %(first)s::bigint + %(count)s - 1) AS g
), rows AS (
    SELECT
        src.*,
        CASE WHEN bucket < 5 THEN 'flow' WHEN bucket < 10 THEN 'preview' ELSE 'script' END AS kind,
        CASE
            WHEN bucket BETWEEN 5 AND 9 THEN NULL
            WHEN g %% 10 < 7 THEN 'u/' || username || '/script_' || (g %% 7)
            ELSE 'f/team' || (g %% 5) || '/job_' || (g %% 9)
        END AS path,
        CASE WHEN bucket < 85 THEN 'success' WHEN bucket < 97 THEN 'failure' ELSE 'canceled' END
            AS status
    FROM src
), j AS (
    INSERT INTO job (
        id, workspace_id, kind, runnable_path, runnable_hash, language, raw_code, args, tag,
        created_by, permissioned_as, email, trigger_kind, trigger, created_at
    )
    SELECT
        id, 'main', kind, path, CASE WHEN kind = 'script' THEN 1000 + (g %% 7) END,
        CASE WHEN kind = 'flow' THEN NULL ELSE 'python3' END,
        CASE WHEN kind = 'preview' THEN 'def main(x):' || chr(10) || '    return x' END,
        jsonb_build_object('x', g), CASE WHEN kind = 'flow' THEN 'flow' ELSE 'python3' END,
        username, 'u/' || username, username || '@example.com',
        CASE WHEN bucket BETWEEN 10 AND 19 THEN 'schedule' END,
        CASE WHEN bucket BETWEEN 10 AND 19 THEN path || '_every_minute' END,
        created_at
    FROM rows
), c AS (
    INSERT INTO job_completed (
        id, workspace_id, status, result, started_at, completed_at, duration_ms, worker
    )
    SELECT
        id, 'main', status,
        CASE status
            WHEN 'success' THEN jsonb_build_object('rows', g %% 1000, 'ok', true)
            WHEN 'failure' THEN jsonb_build_object('error', jsonb_build_object(
                'name', 'ValueError', 'message', 'bad input ' || g, 'stack', 'Traceback...'))
            ELSE jsonb_build_object('error', jsonb_build_object(
                'name', 'Canceled', 'message', 'canceled by user0'))
        END,
        created_at + interval '20 milliseconds',
        created_at + interval '20 milliseconds' + make_interval(secs => duration_ms / 1000.0),
        duration_ms, 'wk-bench-' || (g %% 4)
    FROM rows
)
INSERT INTO job_log (job_id, log_offset, content)
SELECT
    id, 0,
    'job ' || id || ' started on wk-bench-' || (g %% 4) || chr(10)
    || repeat('processing item ' || g || ': fetched, parsed, stored' || chr(10), 5)
    || 'job ' || status || ' after ' || duration_ms || ' ms' || chr(10)
FROM rows;
