-- Suspend (approval) steps: resume events and timeouts. See gristmill.flows.engine (the
-- methods at its end) and migration 0010.

-- name: suspend_step_parent
-- A job of the workspace and the flow it is a step of (NULL: not a flow step).
SELECT parent_job FROM job WHERE id = %(id)s AND workspace_id = %(workspace_id)s;

-- name: suspend_resumes
-- The resume events of a suspended step, oldest first.
SELECT resume_id, approver, approved, value, created_at
FROM resume_job WHERE job = %(job)s
ORDER BY created_at, id;

-- name: suspend_insert_resume
INSERT INTO resume_job (workspace_id, job, flow, resume_id, value, approver, approved)
VALUES (
    %(workspace_id)s, %(job)s, %(flow)s, %(resume_id)s, %(value)s, %(approver)s, %(approved)s
);

-- name: suspend_due
-- Suspended flows still running whose deadline passed.
SELECT s.id FROM job_flow_status s JOIN job_queue q USING (id)
WHERE s.suspend_until <= now()
ORDER BY s.suspend_until
LIMIT 100;

-- name: suspend_until
-- A flow's deadline, and whether it passed (read under the flow's lock).
SELECT suspend_until, suspend_until <= now() AS due FROM job_flow_status WHERE id = %(id)s;

-- name: suspend_flow_of_step
-- A step job, its flow's value and status, and the flow's deadline (for the approval page).
SELECT st.parent_job, st.flow_step_id, f.raw_flow, s.flow_status, s.suspend_until
FROM job st
JOIN job f ON f.id = st.parent_job
LEFT JOIN job_flow_status s ON s.id = f.id
WHERE st.id = %(id)s AND st.workspace_id = %(workspace_id)s;
