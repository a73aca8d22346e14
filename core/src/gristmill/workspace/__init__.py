"""Workspaces (the default ``main`` for now; the full model comes with the workspace issue)."""
