-- Test-only: a queued job of a tag no worker serves, for benchmarks/history.py to time the
-- claim statement on (each claim is rolled back, so the same job is claimed again and again).
-- Parameters: %(id)s, %(tag)s.
WITH j AS (
    INSERT INTO job (id, workspace_id, kind, language, raw_code, tag, created_by,
                     permissioned_as, email)
    VALUES (%(id)s, 'main', 'preview', 'python3', 'def main():' || chr(10) || '    return 1',
            %(tag)s, 'bench', 'u/bench', 'bench@example.com')
    RETURNING id
)
INSERT INTO job_queue (id, workspace_id, tag) SELECT id, 'main', %(tag)s FROM j;
