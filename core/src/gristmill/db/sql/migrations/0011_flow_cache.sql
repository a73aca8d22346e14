-- Flow controls kept between transactions: the results of steps and flows run with a
-- `cache_ttl`, and the early result of a flow with an `early_return` step.
--
-- `flow_cache`: results keyed by workspace and a digest of what ran (language, code and
-- lock, or a script's hash, or a flow's value) and of its arguments. A result is reused by a
-- run whose own `cache_ttl` covers its age (`computed_at`); `expires_at` is the longest ttl
-- it was written with: past it, the row is deleted when a result is written.
CREATE TABLE flow_cache (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    digest       text NOT NULL,
    result       jsonb NOT NULL,
    -- The job that computed it (its logs and args tell how).
    job_id       uuid NOT NULL,
    computed_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, digest)
);

CREATE INDEX flow_cache_expires ON flow_cache (workspace_id, expires_at);

-- A job whose result goes to the cache when it succeeds: its digest is computed once, when
-- it is queued, from what it runs (the job's row alone does not say which fields count).
-- Written just before its job in the same transaction: the reference is checked at commit.
CREATE TABLE flow_cache_pending (
    job_id       uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE
                 DEFERRABLE INITIALLY DEFERRED,
    workspace_id text NOT NULL,
    digest       text NOT NULL,
    ttl_s        double precision NOT NULL
);

-- The result of a flow's `early_return` step, stored when that step completes: a caller of
-- run_wait_result arriving after the notification still finds it here.
CREATE TABLE flow_early_result (
    id           uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    workspace_id text NOT NULL,
    step_id      text NOT NULL,
    result       jsonb NOT NULL
);
