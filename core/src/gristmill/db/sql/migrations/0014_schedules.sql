-- Schedules (gristmill.triggers.schedules): Windmill's `schedule` table, and the ledger of
-- the ticks they fired.
--
-- Firing (docs/triggers.md "Schedules"): every server process runs a ticker that locks the
-- schedules whose `next_tick` has come (FOR UPDATE SKIP LOCKED), records the tick in
-- `schedule_run`, moves `next_tick` on and commits; only then is the job queued, with the id
-- written in the ledger. The row lock and the ledger's primary key make a tick fire once
-- however many processes tick; the job id chosen beforehand makes a second push of the same
-- run (after a crash between the commit and the push) insert nothing.
CREATE TABLE schedule (
    workspace_id           text NOT NULL REFERENCES workspace (id),
    path                   text NOT NULL CHECK (path ~ '^[ufg](/[\w-]+){2,}$'),
    schedule               text NOT NULL,
    timezone               text NOT NULL DEFAULT 'UTC',
    cron_version           text NOT NULL DEFAULT 'v2',
    enabled                boolean NOT NULL DEFAULT false,
    script_path            text NOT NULL,
    is_flow                boolean NOT NULL DEFAULT false,
    args                   jsonb,
    summary                text,
    description            text,
    on_failure             text,
    on_failure_times       integer,
    on_failure_exact       boolean,
    on_failure_extra_args  jsonb,
    on_recovery            text,
    on_recovery_times      integer,
    on_recovery_extra_args jsonb,
    on_success             text,
    on_success_extra_args  jsonb,
    ws_error_handler_muted boolean NOT NULL DEFAULT false,
    retry                  jsonb,
    no_flow_overlap        boolean NOT NULL DEFAULT false,
    tag                    text,
    paused_until           timestamptz,
    -- Why the schedule stopped (it was disabled): shown by get and list, cleared on save.
    error                  text,
    edited_by              text NOT NULL,
    edited_at              timestamptz NOT NULL DEFAULT now(),
    -- Who the runs act as (`u/<username>`) and their email: the last to save or enable it.
    email                  text NOT NULL,
    permissioned_as        text NOT NULL,
    extra_perms            jsonb NOT NULL DEFAULT '{}',
    -- The next tick to fire; NULL while disabled.
    next_tick              timestamptz,
    -- Ticks that did not run (missed while nothing fired, overlap, no free worker): how
    -- many in all, and the last such event.
    skipped_ticks          bigint NOT NULL DEFAULT 0,
    last_skip_at           timestamptz,
    last_skip_reason       text,
    PRIMARY KEY (workspace_id, path)
);

-- The ticker's look for due schedules.
CREATE INDEX schedule_due ON schedule (next_tick) WHERE next_tick IS NOT NULL;

-- One row per run of a tick (a retry of the tick's run is `attempt` 1, 2...). `handled_at`
-- is set once the run has ended and its handlers (on_failure/on_recovery/on_success) and
-- retry were taken care of.
CREATE TABLE schedule_run (
    workspace_id  text NOT NULL,
    schedule_path text NOT NULL,
    tick          timestamptz NOT NULL,
    attempt       integer NOT NULL DEFAULT 0,
    job_id        uuid NOT NULL UNIQUE,
    runnable_path text NOT NULL,
    is_flow       boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Set once the job is in the queue (a crash before leaves it NULL: pushed again).
    pushed_at     timestamptz,
    handled_at    timestamptz,
    -- Set when handled: the run failed and was retried (a later attempt's outcome is the
    -- tick's, the one handlers count).
    retried       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workspace_id, schedule_path, tick, attempt)
);

CREATE INDEX schedule_run_pending ON schedule_run (created_at) WHERE handled_at IS NULL;
CREATE INDEX schedule_run_recent ON schedule_run (workspace_id, schedule_path, created_at DESC);
