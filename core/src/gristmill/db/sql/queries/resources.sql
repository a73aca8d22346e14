-- Resources and resource types.
-- Each block starts with `-- name: <name>` (unique across sql/queries/*.sql); the comment
-- lines right after it say what it does. Python refers to them by name (gristmill.db.queries.Q).

-- name: list_resource_types
-- A workspace's own resource types (the built-in ones come from a data file).
SELECT name, schema, description, format_extension, created_by, edited_at
FROM resource_type
WHERE workspace_id = %(workspace_id)s
ORDER BY name;

-- name: get_resource_type
SELECT name, schema, description, format_extension, created_by, edited_at
FROM resource_type
WHERE workspace_id = %(workspace_id)s AND name = %(name)s;

-- name: insert_resource_type
-- Nothing is returned when the name is taken.
INSERT INTO resource_type (workspace_id, name, schema, description, format_extension, created_by)
VALUES (%(workspace_id)s, %(name)s, %(schema)s, %(description)s, %(format_extension)s,
        %(created_by)s)
ON CONFLICT DO NOTHING
RETURNING name;

-- name: update_resource_type
-- Only the fields given change (`set_schema`: the schema was given, possibly null).
UPDATE resource_type
SET schema = CASE WHEN %(set_schema)s THEN %(schema)s::json ELSE schema END,
    description = coalesce(%(description)s, description),
    edited_at = now()
WHERE workspace_id = %(workspace_id)s AND name = %(name)s
RETURNING name;

-- name: delete_resource_type
DELETE FROM resource_type WHERE workspace_id = %(workspace_id)s AND name = %(name)s
RETURNING name;

-- name: list_resources
-- The resources visible to the caller (gm_can_read), optionally of one type and under a path.
SELECT path, value, description, resource_type, extra_perms, created_by, edited_at
FROM resource
WHERE workspace_id = %(workspace_id)s
  AND (%(resource_type)s::text IS NULL OR resource_type = ANY (string_to_array(%(resource_type)s, ',')))
  AND (%(path_start)s::text IS NULL OR path LIKE %(path_start)s ESCAPE '\')
  AND gm_can_read(path, extra_perms, %(is_admin)s, %(owners)s, %(folders_read)s)
ORDER BY path
LIMIT %(limit)s OFFSET %(offset)s;

-- name: get_resource
SELECT path, value, description, resource_type, extra_perms, created_by, edited_at
FROM resource
WHERE workspace_id = %(workspace_id)s AND path = %(path)s;

-- name: insert_resource
-- Nothing is returned when the path is taken.
INSERT INTO resource (workspace_id, path, value, description, resource_type, created_by)
VALUES (%(workspace_id)s, %(path)s, %(value)s, %(description)s, %(resource_type)s,
        %(created_by)s)
ON CONFLICT DO NOTHING
RETURNING path;

-- name: update_resource
-- Move (`new_path`) and/or change a resource; the caller has checked the new path is free.
UPDATE resource
SET path = %(new_path)s,
    value = %(value)s,
    description = %(description)s,
    resource_type = %(resource_type)s,
    edited_at = now()
WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING path;

-- name: delete_resource
DELETE FROM resource WHERE workspace_id = %(workspace_id)s AND path = %(path)s
RETURNING path;
