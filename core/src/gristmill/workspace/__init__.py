"""Workspaces and what lives in them: members, groups, folders, per-item ACLs, variables and
secrets, resources and their types, and `$var:`/`$res:` references."""
