"""Workspaces: creating, listing, membership and invitation requests."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CreateWorkspace",
    "DeleteInvite",
    "NewWorkspaceInvite",
    "NewWorkspaceUser",
    "UserWorkspace",
    "UserWorkspaceList",
    "Workspace",
    "WorkspaceId",
    "WsSpecificItem",
]


class Workspace(BaseModel):
    id: str
    name: str
    owner: str | None
    deleted: bool = False
    premium: bool = False
    color: str | None = None
    parent_workspace_id: str | None = None


class CreateWorkspace(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    name: str
    #: Ignored: usernames are instance-wide here (the creator keeps theirs).
    username: str | None = None
    color: str | None = None


class WorkspaceId(BaseModel):
    id: str


class UserWorkspace(BaseModel):
    id: str
    name: str
    username: str
    color: str | None = None
    operator_settings: None = None
    parent_workspace_id: str | None = None
    is_dev_workspace: bool = False
    created_by: str | None = None
    disabled: bool


class UserWorkspaceList(BaseModel):
    email: str
    workspaces: list[UserWorkspace]


class NewWorkspaceUser(BaseModel):
    email: str
    is_admin: bool = False
    operator: bool = False
    username: str | None = None


class NewWorkspaceInvite(BaseModel):
    email: str
    is_admin: bool = False
    operator: bool = False


class DeleteInvite(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: str
    is_admin: bool | None = None
    operator: bool | None = None


class WsSpecificItem(BaseModel):
    path: str
    item_kind: str
