"""Git sync: Windmill's workspace setting (``git_sync``) and Gristmill's view of its state."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EditGitSyncConfig",
    "GitRepositorySettings",
    "GitSyncConfig",
    "GitSyncStatus",
    "WorkspaceSettings",
]


class GitSyncFilters(BaseModel):
    """Which items a repository takes (Windmill's ``settings``): path globs and item types."""

    model_config = ConfigDict(extra="allow")

    include_path: list[str] = Field(default_factory=lambda: ["f/**"])
    include_type: list[str] | None = None
    exclude_path: list[str] = Field(default_factory=list[str])
    extra_include_path: list[str] = Field(default_factory=list[str])


class GitRepositorySettings(BaseModel):
    """One repository: a ``git_repository`` resource (``$res:`` prefix optional) holding its
    ``url`` (and optionally ``branch``)."""

    model_config = ConfigDict(extra="allow")

    git_repo_resource_path: str
    script_path: str | None = None
    use_individual_branch: bool = False
    group_by_folder: bool = False
    settings: GitSyncFilters | None = None


class GitSyncConfig(BaseModel):
    """Windmill's ``WorkspaceGitSyncSettings``."""

    model_config = ConfigDict(extra="allow")

    repositories: list[GitRepositorySettings] = Field(default_factory=list[GitRepositorySettings])


class EditGitSyncConfig(BaseModel):
    """The body of ``edit_git_sync_config``: the setting, or null (no repository: off)."""

    model_config = ConfigDict(extra="ignore")

    git_sync_settings: GitSyncConfig | None = None


class GitSyncStatus(BaseModel):
    """The setting (null: git sync is off) and how syncing goes: deployments waiting, the
    last failure (cleared by the next success), the last commit pushed."""

    git_sync_settings: dict[str, Any] | None
    pending: int
    last_error: str | None
    last_error_at: dt.datetime | None
    last_commit: str | None
    last_pushed_at: dt.datetime | None


class WorkspaceSettings(BaseModel):
    """Windmill's ``get_settings``, the part Gristmill has: the workspace and its git sync
    (``null``: off). Windmill's other settings (error handlers, Slack, AI, storage...) do not
    exist here and are left out."""

    workspace_id: str
    git_sync: dict[str, Any] | None
