-- History at scale (issue 15, point 6; benchmarks/history.py). With a million completed
-- jobs, each list filter the UI sends must walk an index in created_at order and stop at
-- the page's end (the list statement, list_jobs, cuts each part to the page); and the
-- retention purge must find the oldest completed jobs without reading the whole history.
-- The filters already served: none and created_after/before (job_by_created), a path
-- (job_by_path), a flow's steps (job_by_parent); job kinds are common enough that walking
-- job_by_created finds a page quickly.

-- The runs of one user (the Runs page's "who" filter).
CREATE INDEX job_by_created_by ON job (workspace_id, created_by, created_at DESC);

-- The runs of one trigger: a schedule's runs (schedule_path), a webhook's, ... Only the jobs
-- a trigger started are in it.
CREATE INDEX job_by_trigger ON job (workspace_id, trigger, created_at DESC)
    WHERE trigger IS NOT NULL;

-- The jobs that did not succeed (the Runs page's "failure" filter): when they are few, as in
-- a healthy install, the list starts from them (1.5 ms with 229 failures among 300,000
-- jobs, where reading job_completed whole took 64 ms, and grows with the history); when
-- they are many, the planner walks job_by_created. Small: only those jobs are in it.
CREATE INDEX job_completed_not_success ON job_completed (completed_at)
    WHERE status <> 'success';

-- The retention purge (gristmill.queue.retention): the oldest completed jobs first.
CREATE INDEX job_completed_by_completed_at ON job_completed (completed_at);
