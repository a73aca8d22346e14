-- Dependencies: a preview may carry its own lock (Windmill's `raw_lock`). A script version's
-- lock and lock errors are already columns of `script`.
ALTER TABLE job ADD COLUMN raw_lock text;
