"""A workspace as files, in the formats of Windmill's CLI (``wmill sync``).

- :mod:`~gristmill.sync.format` (pure): one stored item (script, flow, variable, resource,
  resource type, folder, schedule, trigger) as the entries of Windmill's workspace tarball
  (JSON, ``GET /api/w/{ws}/workspaces/tarball``) and as the files ``wmill sync pull`` writes
  from them (YAML, ``!inline`` files); the reverse, a folder read back into items; per-item
  helpers ``script_files`` / ``flow_files`` / ``schedule_files`` for git sync.
- :mod:`~gristmill.sync.archive`: a workspace's items gathered through the caller's
  ``Access`` (secrets as their ciphertext unless asked decrypted), written as a zip or tar;
  reading such an archive back (member paths checked).
- :mod:`~gristmill.sync.local`: a sync folder on disk: read, brought to the remote's files by
  a pull (writes, removals of items gone), and which items its ``wmill.yaml`` syncs.
- :mod:`~gristmill.sync.sealed`: secrets of a workspace export sealed with a passphrase.
"""
