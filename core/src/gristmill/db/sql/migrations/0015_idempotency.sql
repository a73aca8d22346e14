-- Idempotent submission (docs/reliability.md "Idempotent submission"): a run request that
-- carries an `Idempotency-Key` header records it on its job. One key names one job per
-- workspace, enforced by the index below, so that a retry racing the first request finds the
-- key taken inside the insert itself (ON CONFLICT DO NOTHING) instead of in a read before it.
-- The key is a column of `job`: it lives exactly as long as the job's history row and goes
-- with it when old jobs are deleted. A caller-chosen `job_id` needs nothing more: it is the
-- primary key.
ALTER TABLE job ADD COLUMN idempotency_key text;

CREATE UNIQUE INDEX job_idempotency_key ON job (workspace_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
