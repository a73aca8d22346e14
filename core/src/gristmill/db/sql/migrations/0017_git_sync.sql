-- Git sync (issue 16, point 5; gristmill.sync.git, docs/local-development.md "Git sync"): a
-- workspace's setting (Windmill's `git_sync` workspace setting: the repositories, each named
-- by a `git_repository` resource) and the deployments still to commit.

CREATE TABLE git_sync_setting (
    workspace_id   text PRIMARY KEY REFERENCES workspace (id) ON DELETE CASCADE,
    -- Windmill's WorkspaceGitSyncSettings: {"repositories": [{"git_repo_resource_path": ...}]}
    settings       jsonb NOT NULL,
    -- The last failure of a commit or a push (NULL once one succeeds again), for the API.
    last_error     text,
    last_error_at  timestamptz,
    -- The last commit pushed, and when.
    last_commit    text,
    last_pushed_at timestamptz,
    edited_by      text NOT NULL,
    edited_at      timestamptz NOT NULL DEFAULT now()
);

-- The deployments not committed yet: a row per audited deployment of a script, flow or
-- schedule in a workspace with git sync set, deleted once its commit is pushed.
CREATE TABLE git_sync_pending (
    id              bigserial PRIMARY KEY,
    workspace_id    text NOT NULL REFERENCES workspace (id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('script', 'flow', 'schedule')),
    path            text NOT NULL,
    -- A flow moved by an update: its new path (the old one's files go).
    new_path        text,
    -- The version deployed (a script's hash, a flow version's id): what this commit holds,
    -- even when later deployments of the item are already saved. NULL: the item as it is.
    version         text,
    operation       text NOT NULL,
    username        text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);

CREATE INDEX git_sync_pending_due ON git_sync_pending (next_attempt_at, workspace_id);

-- Why from the audit log: every deployment is audited in its own transaction, so the row here
-- is written (or not) with the deployment itself: never lost by a crash between the two,
-- never written for a deployment that rolled back, and no deployment code needs to know git
-- sync exists. A workspace without git sync pays one indexed lookup per audited deployment.
CREATE FUNCTION gm_git_sync_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM git_sync_setting WHERE workspace_id = NEW.workspace_id) THEN
        INSERT INTO git_sync_pending
            (workspace_id, kind, path, new_path, version, operation, username)
        VALUES (NEW.workspace_id,
                CASE split_part(NEW.operation, '.', 1)
                    WHEN 'scripts' THEN 'script'
                    WHEN 'flows' THEN 'flow'
                    ELSE 'schedule'
                END,
                NEW.resource, NEW.parameters ->> 'path',
                CASE WHEN NEW.operation IN ('scripts.create', 'scripts.update')
                         THEN NEW.parameters ->> 'hash'
                     WHEN NEW.operation IN ('flows.create', 'flows.update')
                         THEN NEW.parameters ->> 'id'
                END,
                NEW.operation, NEW.username);
    END IF;
    RETURN NULL;
END;
$$;

-- The WHEN clause is checked before any function call: the audit entries of job runs, logins
-- and the rest (the hot ones) cost nothing more.
CREATE TRIGGER audit_git_sync AFTER INSERT ON audit
    FOR EACH ROW
    WHEN (NEW.resource IS NOT NULL AND NEW.operation IN (
        'scripts.create', 'scripts.update', 'scripts.archive', 'scripts.delete',
        'flows.create', 'flows.update', 'flows.archive', 'flows.delete',
        'schedule.create', 'schedule.edit', 'schedule.setenabled', 'schedule.delete'))
    EXECUTE FUNCTION gm_git_sync_enqueue();
