-- Set-up of the tests' fixtures (gristmill.testing.members); not used by the product.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: testing_insert_workspace
INSERT INTO workspace (id, name) VALUES (%(id)s, %(id)s) ON CONFLICT DO NOTHING;
