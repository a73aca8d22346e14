-- The foundation: workspaces, users and tokens, scripts, and the job queue.
--
-- Jobs are split as in Windmill v2: `job` holds what never changes once queued, `job_queue`
-- only the queued and running jobs (kept small so claiming stays fast at any history size),
-- `job_completed` the history, and `job_log` the output in appended chunks.
-- Languages are plain text checked by the application against its runtime registry: a new
-- runtime never needs a migration.

CREATE TABLE instance_setting (
    name  text PRIMARY KEY,
    value jsonb NOT NULL
);

CREATE TABLE workspace (
    id         text PRIMARY KEY CHECK (id ~ '^[a-zA-Z0-9_-]+$'),
    name       text NOT NULL,
    owner      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted    boolean NOT NULL DEFAULT false
);

INSERT INTO workspace (id, name) VALUES ('main', 'Main');

CREATE TABLE app_user (
    email         text PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-zA-Z0-9_-]+$'),
    password_hash text,
    super_admin   boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE token (
    token_hash   text PRIMARY KEY,
    token_prefix text NOT NULL,
    email        text NOT NULL REFERENCES app_user (email) ON DELETE CASCADE,
    label        text,
    expiration   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE script (
    workspace_id    text NOT NULL REFERENCES workspace (id),
    hash            bigint NOT NULL,
    path            text NOT NULL CHECK (path ~ '^[ufg](/[\w-]+){2,}$'),
    parent_hashes   bigint[] NOT NULL DEFAULT '{}',
    summary         text NOT NULL DEFAULT '',
    description     text NOT NULL DEFAULT '',
    content         text NOT NULL,
    schema          jsonb,
    language        text NOT NULL,
    kind            text NOT NULL DEFAULT 'script',
    tag             text,
    lock            text,
    lock_error_logs text,
    timeout         integer CHECK (timeout IS NULL OR timeout > 0),
    priority        smallint,
    envs            text[],
    deployment_message text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    archived        boolean NOT NULL DEFAULT false,
    deleted         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (workspace_id, hash)
);

CREATE INDEX script_by_path ON script (workspace_id, path, created_at DESC);

CREATE TABLE job (
    id              uuid PRIMARY KEY,
    workspace_id    text NOT NULL REFERENCES workspace (id),
    kind            text NOT NULL,
    runnable_path   text,
    runnable_hash   bigint,
    language        text,
    -- Code of previews; scripts are read from `script` by hash.
    raw_code        text,
    -- Schema of previews, for typed argument conversions.
    raw_schema      jsonb,
    args            jsonb NOT NULL DEFAULT '{}',
    tag             text NOT NULL,
    priority        smallint,
    timeout         integer,
    created_by      text NOT NULL,
    permissioned_as text NOT NULL,
    email           text NOT NULL,
    parent_job      uuid,
    root_job        uuid,
    trigger_kind    text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX job_by_path ON job (workspace_id, runnable_path, created_at DESC);
CREATE INDEX job_by_created ON job (workspace_id, created_at DESC);

CREATE TABLE job_queue (
    id              uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    workspace_id    text NOT NULL,
    tag             text NOT NULL,
    priority        smallint,
    scheduled_for   timestamptz NOT NULL DEFAULT now(),
    running         boolean NOT NULL DEFAULT false,
    started_at      timestamptz,
    worker          text,
    ping            timestamptz,
    canceled_by     text,
    canceled_reason text
);

-- The claim query walks this index in order, skipping rows other workers hold.
CREATE INDEX job_queue_pull ON job_queue (priority DESC NULLS LAST, scheduled_for, tag)
    WHERE NOT running;
CREATE INDEX job_queue_running ON job_queue (ping) WHERE running;

CREATE TABLE job_completed (
    id              uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    workspace_id    text NOT NULL,
    status          text NOT NULL CHECK (status IN ('success', 'failure', 'canceled', 'skipped')),
    result          jsonb,
    started_at      timestamptz,
    completed_at    timestamptz NOT NULL DEFAULT now(),
    duration_ms     bigint NOT NULL DEFAULT 0,
    worker          text,
    canceled_by     text,
    canceled_reason text
);

CREATE TABLE job_log (
    job_id     uuid NOT NULL,
    -- Offset, in characters, of this chunk within the job's whole log.
    log_offset integer NOT NULL,
    content    text NOT NULL,
    PRIMARY KEY (job_id, log_offset)
);
