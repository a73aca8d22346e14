-- The flow engine: a flow job keeps its flow (what it runs) and its status (where it is).
--
-- `job.raw_flow` is the flow value of a flow preview (it never changes once queued, like
-- `raw_code`). `job_flow_status` holds the status the engine reads and writes at each step:
-- apart from `job` (which never changes) and from `job_queue` (left when the flow ends,
-- while its status is still served). Its row is the flow's lock: every advance takes it
-- FOR UPDATE, so two completions of one flow never decide at once.
ALTER TABLE job ADD COLUMN raw_flow jsonb;

CREATE TABLE job_flow_status (
    id           uuid PRIMARY KEY REFERENCES job (id) ON DELETE CASCADE,
    workspace_id text NOT NULL,
    flow_status  jsonb NOT NULL,
    -- The job the flow waits for (NULL once it ended): the monitor's sweep finds flows whose
    -- awaited job completed without the flow advancing.
    awaiting     uuid
);

CREATE INDEX job_flow_status_awaiting ON job_flow_status (awaiting) WHERE awaiting IS NOT NULL;
-- A flow's steps, for cancelling them with it and listing them.
CREATE INDEX job_by_parent ON job (parent_job) WHERE parent_job IS NOT NULL;
