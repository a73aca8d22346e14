-- Schemas keep their properties in signature order: `jsonb` sorts an object's keys, `json`
-- keeps the text as written (Windmill stores schemas as json too).
ALTER TABLE script ALTER COLUMN schema TYPE json USING schema::json;
ALTER TABLE job ALTER COLUMN raw_schema TYPE json USING raw_schema::json;
