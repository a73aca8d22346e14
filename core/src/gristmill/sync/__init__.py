"""A workspace as files, in the formats of Windmill's CLI (``wmill sync``).

- :mod:`~gristmill.sync.format` (pure): one stored item (script, flow, variable, resource,
  resource type, folder, schedule, trigger) as the entries of Windmill's workspace tarball
  (JSON, ``GET /api/w/{ws}/workspaces/tarball``) and as the files ``wmill sync pull`` writes
  from them (YAML, ``!inline`` files); the reverse, a folder read back into items; per-item
  helpers ``script_files`` / ``flow_files`` / ``schedule_files`` for git sync.
"""
