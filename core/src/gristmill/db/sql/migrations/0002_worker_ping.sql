-- Worker processes announce themselves: which tags they take, which runtimes they have but
-- cannot run (a missing toolchain, with the reason). The API uses it to fail at once a job
-- that no worker can run, instead of leaving it queued forever.

CREATE TABLE worker_ping (
    worker_instance text PRIMARY KEY,
    worker_group    text NOT NULL,
    hostname        text NOT NULL,
    pid             integer NOT NULL,
    num_workers     integer NOT NULL,
    tags            text[] NOT NULL,
    -- runtime name -> why its toolchain is unavailable on this worker
    unavailable     jsonb NOT NULL DEFAULT '{}',
    started_at      timestamptz NOT NULL DEFAULT now(),
    ping_at         timestamptz NOT NULL DEFAULT now()
);
