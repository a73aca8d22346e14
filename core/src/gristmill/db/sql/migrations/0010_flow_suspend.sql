-- Suspend (approval) steps: the resume events of a suspended flow and its deadline.
--
-- `resume_job` (Windmill's name) records each approval or disapproval of a suspended step:
-- who (the link's approver, or the logged-in user), when, the form's payload. One row per
-- (step job, resume id): a resume link works once. One row per (step job, approver): a user
-- approves once. The engine reads the flow's state from `job_flow_status`; these rows are
-- the record shown to approvers (`jobs_u/get_flow`).
CREATE TABLE resume_job (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id text NOT NULL,
    -- The suspending step's job (the flow's own id when the step ran no job).
    job          uuid NOT NULL,
    flow         uuid NOT NULL REFERENCES job (id) ON DELETE CASCADE,
    resume_id    bigint NOT NULL CHECK (resume_id BETWEEN 0 AND 4294967295),
    value        jsonb,
    approver     text,
    approved     boolean NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job, resume_id)
);

CREATE UNIQUE INDEX resume_job_one_per_approver ON resume_job (job, approver)
WHERE approver IS NOT NULL;
CREATE INDEX resume_job_flow ON resume_job (flow);

-- When a suspended flow times out. Set from the status the engine stores (its
-- `engine.suspended.timeout_s`) by the trigger below, so that the deadline is the database's
-- clock at the moment the flow suspended, whichever code path stored the status.
ALTER TABLE job_flow_status ADD COLUMN suspend_until timestamptz;

CREATE INDEX job_flow_status_suspend_until ON job_flow_status (suspend_until)
WHERE suspend_until IS NOT NULL;

CREATE FUNCTION job_flow_status_suspend_deadline() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    waiting jsonb := NEW.flow_status -> 'engine' -> 'suspended';
BEGIN
    IF waiting IS NULL OR jsonb_typeof(waiting) <> 'object'
        OR coalesce((NEW.flow_status -> 'engine' ->> 'finished')::boolean, false) THEN
        NEW.suspend_until := NULL;
    ELSIF TG_OP = 'INSERT' OR NEW.suspend_until IS NULL
        OR (OLD.flow_status -> 'engine' -> 'suspended' -> 'path',
            OLD.flow_status -> 'engine' -> 'suspended' -> 'job_id')
           IS DISTINCT FROM (waiting -> 'path', waiting -> 'job_id') THEN
        -- A new suspension (not a further approval of the same one): its deadline starts now.
        NEW.suspend_until := now() + make_interval(secs => (waiting ->> 'timeout_s')::double precision);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER job_flow_status_suspend_deadline
BEFORE INSERT OR UPDATE OF flow_status ON job_flow_status
FOR EACH ROW EXECUTE FUNCTION job_flow_status_suspend_deadline();
