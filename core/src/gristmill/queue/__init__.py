"""The job queue in Postgres: enqueueing, claiming, states, rows and logs, cancelling,
waiting for results, notifications, zombie jobs, repeated run requests (idempotency)."""
