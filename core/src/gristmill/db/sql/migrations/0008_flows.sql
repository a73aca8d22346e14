-- Flows as stored objects (Windmill's `flow` and `flow_version`): an OpenFlow value and its
-- input schema at a path, with the ACL and the options of a runnable. Each save adds a
-- `flow_version` row (the history); `flow` holds what is current, and `versions` the ids of
-- its versions, oldest first (the last one is the current one). Running flows is not stored
-- here: jobs refer to a version by its id when they exist.

CREATE TABLE flow (
    workspace_id  text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    path          text NOT NULL CHECK (path ~ '^[ufg](/[\w-]+){2,}$'),
    summary       text NOT NULL DEFAULT '',
    description   text NOT NULL DEFAULT '',
    -- The OpenFlow `FlowValue` ({modules, failure_module, ...}), kept as sent.
    value         jsonb NOT NULL,
    -- The JSON schema of the flow's inputs.
    schema        jsonb,
    edited_by     text NOT NULL,
    edited_at     timestamptz NOT NULL DEFAULT now(),
    archived      boolean NOT NULL DEFAULT false,
    extra_perms   jsonb NOT NULL DEFAULT '{}',
    tag           text,
    ws_error_handler_muted boolean NOT NULL DEFAULT false,
    dedicated_worker       boolean NOT NULL DEFAULT false,
    visible_to_runner_only boolean NOT NULL DEFAULT false,
    timeout       integer CHECK (timeout IS NULL OR timeout > 0),
    priority      smallint,
    versions      bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (workspace_id, path)
);

CREATE TABLE flow_version (
    id             bigserial PRIMARY KEY,
    workspace_id   text NOT NULL,
    path           text NOT NULL,
    value          jsonb NOT NULL,
    schema         jsonb,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deployment_msg text,
    -- A moved flow takes its history along; a deleted one, its history too.
    FOREIGN KEY (workspace_id, path) REFERENCES flow (workspace_id, path)
        ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX flow_version_by_path ON flow_version (workspace_id, path, id DESC);
