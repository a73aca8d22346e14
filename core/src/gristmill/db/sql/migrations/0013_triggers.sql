-- Triggers of every kind but schedules (gristmill.triggers): HTTP routes, the Postgres
-- trigger, and the kinds plugins add. One table for all of them: the fields every trigger has
-- (Windmill's names) are columns; what a kind adds (an HTTP route's path and method, a
-- Postgres trigger's resource and tables) is `config`, checked by the kind's own model at
-- save time. A plugin's trigger kind thus needs no migration of its own.
CREATE TABLE trigger (
    workspace_id     text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,39}$'),
    path             text NOT NULL CHECK (path ~ '^[ufg](/[\w-]+){2,}$'),
    script_path      text NOT NULL CHECK (script_path ~ '^[ufg](/[\w-]+){2,}$'),
    is_flow          boolean NOT NULL DEFAULT false,
    summary          text,
    description      text,
    config           jsonb NOT NULL DEFAULT '{}',
    -- 'enabled' or 'disabled' (Windmill's `mode`; its `enabled` flag is derived from it).
    mode             text NOT NULL DEFAULT 'enabled' CHECK (mode IN ('enabled', 'disabled')),
    -- The last error of the trigger (an unreachable database, a listener that stopped), shown
    -- by `get` and `list` until the trigger works again: never a silent stop.
    error            text,
    error_at         timestamptz,
    -- Long-running listeners (the Postgres trigger, plugins' brokers): the server process that
    -- holds the trigger and when it last said so. Another server takes a trigger whose
    -- holder stopped pinging.
    server_id        text,
    last_server_ping timestamptz,
    edited_by        text NOT NULL,
    email            text NOT NULL,
    edited_at        timestamptz NOT NULL DEFAULT now(),
    extra_perms      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (workspace_id, kind, path)
);

CREATE INDEX trigger_by_kind ON trigger (kind) WHERE mode = 'enabled';
