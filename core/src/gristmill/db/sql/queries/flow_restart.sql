-- Restarting a finished flow from a step (gristmill.flows.engine.FlowEngine.restart).
-- Each block starts with `-- name: <name>`.

-- name: restart_get_flow_job
-- The old flow job: its flow, args, who ran it, its status and whether it has ended (its
-- queue row is gone).
SELECT j.id, j.kind, j.runnable_path, j.raw_flow, j.args, j.permissioned_as, j.parent_job,
    j.timeout,
    s.flow_status, NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.id = j.id) AS ended
FROM job j
JOIN job_flow_status s USING (id)
WHERE j.id = %(id)s AND j.workspace_id = %(workspace_id)s;
