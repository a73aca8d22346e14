"""Folders: a folder, a new one, an update, an owner, its usage."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Folder", "FolderOwner", "FolderUsage", "NewFolder", "UpdateFolder"]


class Folder(BaseModel):
    """A folder (Windmill's Folder)."""

    workspace_id: str
    name: str
    display_name: str
    summary: str | None = None
    owners: list[str] = Field(default_factory=list)
    extra_perms: dict[str, bool] = Field(default_factory=dict)
    created_by: str | None = None
    edited_at: dt.datetime | None = None


class NewFolder(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    summary: str | None = None
    display_name: str | None = None
    owners: list[str] | None = None
    extra_perms: dict[str, bool] | None = None


class UpdateFolder(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary: str | None = None
    display_name: str | None = None
    owners: list[str] | None = None
    extra_perms: dict[str, bool] | None = None


class FolderOwner(BaseModel):
    model_config = ConfigDict(extra="ignore")

    owner: str


class FolderUsage(BaseModel):
    """How many items a folder holds, per kind."""

    scripts: int
    flows: int
    apps: int
    resources: int
    variables: int
    schedules: int
