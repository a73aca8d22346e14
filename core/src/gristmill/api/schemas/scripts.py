"""Scripts: a new version, a version, lists and history, deployment status."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DeploymentStatus",
    "NewScript",
    "Script",
    "ScriptHistoryEntry",
    "ScriptListItem",
]


class NewScript(BaseModel):
    """A new script version (Windmill's NewScript; fields Gristmill does not use are ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    path: str
    content: str
    language: str
    parent_hash: str | None = None
    summary: str = ""
    description: str = ""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    kind: str = "script"
    tag: str | None = None
    lock: str | None = None
    timeout: int | None = None
    priority: int | None = None
    envs: list[str] | None = None
    deployment_message: str | None = None


class Script(BaseModel):
    """One script version, as Windmill's clients read it."""

    model_config = ConfigDict(populate_by_name=True)

    workspace_id: str
    hash: str
    path: str
    parent_hashes: list[str] | None
    summary: str
    description: str
    content: str
    created_by: str
    created_at: dt.datetime
    archived: bool
    deleted: bool
    #: The JSON schema of ``main``'s parameters.
    schema_: dict[str, Any] | None = Field(alias="schema")
    is_template: bool = False
    extra_perms: dict[str, bool] = Field(default_factory=dict)
    lock: str | None
    lock_error_logs: str | None
    language: str
    kind: str
    tag: str | None
    timeout: int | None
    priority: int | None
    envs: list[str] | None
    deployment_message: str | None


class ScriptListItem(BaseModel):
    """The newest version at a path, without its content."""

    hash: str
    path: str
    summary: str
    description: str
    created_at: dt.datetime
    created_by: str
    archived: bool
    extra_perms: dict[str, bool] = Field(default_factory=dict)
    language: str
    kind: str
    tag: str | None
    starred: bool = False
    has_draft: bool = False
    draft_only: bool = False
    #: The version's dependencies could not be locked: it cannot run.
    has_deploy_errors: bool


class ScriptHistoryEntry(BaseModel):
    script_hash: str
    deployment_msg: str | None
    created_at: dt.datetime
    #: Who saved the version (Gristmill's addition: the editor's history shows it).
    created_by: str


class DeploymentStatus(BaseModel):
    """Whether a version is ready to run."""

    lock: str | None
    lock_error_logs: str | None
    #: The newest dependency job of the version.
    job_id: str | None
    status: Literal["deployed", "locking", "failed"]
