-- Workspaces as Windmill has them: members with a role, groups, folders, per-item ACLs
-- (`extra_perms`), variables (secrets encrypted with a per-workspace key), resources and
-- their types, the audit log, scoped tokens, login throttling and job progress.
--
-- Permissions are checked by the application (gristmill.auth.permissions), not by row-level
-- security: one Python rule, and the SQL function `gm_can_read` below for list queries, so
-- that a list never returns what a `get` would refuse.

-- Membership: a user's role in a workspace (Windmill's `usr`). The username is the user's
-- instance-wide one (Windmill allows a different username per workspace; we do not).
CREATE TABLE workspace_member (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    email        text NOT NULL REFERENCES app_user (email) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('admin', 'developer', 'operator')),
    disabled     boolean NOT NULL DEFAULT false,
    added_by     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, email)
);

-- An invitation a user accepts (or declines) to become a member.
CREATE TABLE workspace_invite (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'developer', 'operator')),
    invited_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, email)
);

-- The existing users of the default workspace become its members: super admins as admins.
INSERT INTO workspace_member (workspace_id, email, role)
SELECT 'main', email, CASE WHEN super_admin THEN 'admin' ELSE 'developer' END FROM app_user;

CREATE TABLE group_ (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-zA-Z0-9_-]+$'),
    summary      text,
    extra_perms  jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE group_member (
    workspace_id text NOT NULL,
    group_name   text NOT NULL,
    username     text NOT NULL,
    PRIMARY KEY (workspace_id, group_name, username),
    FOREIGN KEY (workspace_id, group_name) REFERENCES group_ (workspace_id, name)
        ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX group_member_by_user ON group_member (workspace_id, username);

CREATE TABLE folder (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-zA-Z0-9_-]+$'),
    display_name text NOT NULL,
    summary      text,
    -- "u/<user>" or "g/<group>": the folder's admins.
    owners       text[] NOT NULL DEFAULT '{}',
    extra_perms  jsonb NOT NULL DEFAULT '{}',
    created_by   text,
    edited_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name)
);

ALTER TABLE script ADD COLUMN extra_perms jsonb NOT NULL DEFAULT '{}';

-- One data key per workspace, stored wrapped (AES-GCM) by the instance key, which is kept
-- outside the database (the data directory or GRISTMILL_INSTANCE_KEY).
CREATE TABLE workspace_key (
    workspace_id text PRIMARY KEY REFERENCES workspace (id) ON DELETE CASCADE,
    wrapped_key  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE variable (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    path         text NOT NULL CHECK (path ~ '^[ufg](/[\w-]+){2,}$'),
    -- Plain text for plain variables; for secrets, the AES-GCM ciphertext (base64).
    value        text NOT NULL,
    is_secret    boolean NOT NULL DEFAULT false,
    description  text NOT NULL DEFAULT '',
    extra_perms  jsonb NOT NULL DEFAULT '{}',
    account      integer,
    is_oauth     boolean NOT NULL DEFAULT false,
    created_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    edited_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, path)
);

CREATE TABLE resource_type (
    workspace_id text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (name ~ '^[a-zA-Z0-9_]+$'),
    schema       json,
    description  text,
    format_extension text,
    created_by   text,
    edited_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, name)
);

CREATE TABLE resource (
    workspace_id  text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    path          text NOT NULL CHECK (path ~ '^[ufg](/[\w-]+){2,}$'),
    value         jsonb,
    description   text,
    resource_type text NOT NULL,
    extra_perms   jsonb NOT NULL DEFAULT '{}',
    created_by    text,
    edited_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, path)
);

-- Who did what (Windmill's `audit`): logins, secret reads, runs, permission changes.
CREATE TABLE audit (
    id           bigserial PRIMARY KEY,
    workspace_id text NOT NULL,
    timestamp    timestamptz NOT NULL DEFAULT now(),
    username     text NOT NULL,
    operation    text NOT NULL,
    action_kind  text NOT NULL CHECK (action_kind IN ('Create', 'Update', 'Delete', 'Execute')),
    resource     text,
    parameters   jsonb
);

CREATE INDEX audit_by_time ON audit (workspace_id, timestamp DESC);

-- Tokens: scopes (`{domain}:{action}[:{path}]`, none = everything the owner may do) and an
-- optional workspace they are limited to.
ALTER TABLE token ADD COLUMN scopes text[];
ALTER TABLE token ADD COLUMN workspace_id text;
ALTER TABLE token ADD COLUMN last_used_at timestamptz;

-- Failed logins, per account and per address, for throttling across server processes.
CREATE TABLE login_failure (
    key       text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX login_failure_by_key ON login_failure (key, failed_at);

-- A job's progress (0-100), set by the job through `set_progress`.
CREATE TABLE job_progress (
    job_id     uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    percent    integer NOT NULL CHECK (percent BETWEEN 0 AND 100),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Job context for flows and triggers (WM_FLOW_PATH, WM_SCHEDULE_PATH, WM_FLOW_STEP_ID) and the
-- scopes the job token inherits from the token that started the job.
ALTER TABLE job ADD COLUMN trigger text;
ALTER TABLE job ADD COLUMN flow_step_id text;
ALTER TABLE job ADD COLUMN permissioned_scopes text[];

-- The secrets (variable paths) a job read, so that their values are masked in its logs.
CREATE TABLE job_secret_read (
    job_id uuid NOT NULL,
    path   text NOT NULL,
    PRIMARY KEY (job_id, path)
);

-- Whether an item at `path` with these `extra_perms` is visible to a caller who is an admin
-- (`is_admin`), is `me` ("u/<name>") with `owners` (me plus "g/<group>" of its groups) and
-- may read the folders `folders_read`. The list queries use it; gristmill.auth.permissions
-- holds the same rule in Python for single items.
CREATE FUNCTION gm_can_read(
    path text, extra_perms jsonb, is_admin boolean, owners text[], folders_read text[]
) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT is_admin
        OR split_part(path, '/', 1) || '/' || split_part(path, '/', 2) = ANY (owners)
        OR (split_part(path, '/', 1) = 'f' AND split_part(path, '/', 2) = ANY (folders_read))
        OR coalesce(extra_perms ?| owners, false)
$$;
