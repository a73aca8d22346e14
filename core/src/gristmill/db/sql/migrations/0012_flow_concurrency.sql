-- Flow concurrency limits and same_worker flows (gristmill.flows.engine, "Concurrency").
--
-- `flow_concurrency`: one row per run of a flow with `concurrent_limit`, under its concurrency
-- key (the flow's path, or its `concurrency_key` template with `$workspace` and `$args[x]`
-- filled in). `started_at` is NULL while the run waits for a slot. As Windmill counts them, a
-- key's slots are taken by its runs still running and by those that ended less than
-- `window_s` seconds ago; whether a run is still running or when it ended is read from the
-- queue and the history (a canceled run frees its slot without touching this table). Rows
-- whose slot is free again are pruned when the key is looked at, so the table stays small.
CREATE TABLE flow_concurrency (
    id               uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    workspace_id     text NOT NULL,
    key              text NOT NULL,
    concurrent_limit integer NOT NULL CHECK (concurrent_limit > 0),
    window_s         integer NOT NULL DEFAULT 0 CHECK (window_s >= 0),
    -- The order in which waiting runs start (clock time: runs queued in one transaction
    -- keep the order of their inserts).
    queued_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at       timestamptz
);

CREATE INDEX flow_concurrency_by_key ON flow_concurrency (key, queued_at);
-- The monitor's look for keys with waiting runs.
CREATE INDEX flow_concurrency_waiting ON flow_concurrency (key) WHERE started_at IS NULL;

-- `same_worker`: a flow step that must run on one worker (the one that ran the flow's first
-- step): the claim query lets only that worker take the row. '*': a step of a same_worker
-- flow that any worker may take (the first one); NULL: any other job.
ALTER TABLE job_queue ADD COLUMN worker_pin text;
