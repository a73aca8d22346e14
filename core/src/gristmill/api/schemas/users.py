"""Users of the instance, members of a workspace, API tokens, invitations (Windmill's
GlobalUserInfo, User, NewToken, TruncatedToken, WorkspaceInvite ...)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AcceptInvite",
    "DeclineInvite",
    "EditWorkspaceUser",
    "GlobalUserInfo",
    "NewToken",
    "NewUser",
    "SetPassword",
    "TruncatedToken",
    "User",
    "WorkspaceInvite",
]


class GlobalUserInfo(BaseModel):
    """A user of the instance (``GET /api/users/whoami``)."""

    email: str
    login_type: Literal["password"] = "password"
    super_admin: bool
    devops: bool = False
    verified: bool = True
    name: str | None = None
    company: str | None = None
    username: str | None = None
    operator_only: bool = False
    first_time_user: bool = False
    #: Gristmill: set when the caller is a job using its ``WM_TOKEN``.
    job_id: str | None = None


class User(BaseModel):
    """A member of a workspace (``GET /api/w/{workspace}/users/whoami``, ``list``, ``whois``)."""

    email: str
    username: str
    is_admin: bool
    name: str | None = None
    is_super_admin: bool
    created_at: dt.datetime
    operator: bool
    disabled: bool
    #: Gristmill's single role (admin | developer | operator), which the two flags mirror.
    role: str
    groups: list[str]
    folders: list[str]
    folders_owners: list[str]
    added_via: None = None


class NewUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: str
    password: str
    super_admin: bool = False
    name: str | None = None
    username: str | None = None
    company: str | None = None


class SetPassword(BaseModel):
    password: str


class NewToken(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str | None = None
    #: RFC 3339; a time without offset is UTC.
    expiration: dt.datetime | None = None
    scopes: list[str] | None = None
    workspace_id: str | None = None


class TruncatedToken(BaseModel):
    """A token as listed: its first 10 characters, never the token."""

    token_prefix: str
    label: str | None
    expiration: dt.datetime | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    scopes: list[str] | None
    workspace_id: str | None


class EditWorkspaceUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    is_admin: bool | None = None
    operator: bool | None = None
    disabled: bool | None = None


class AcceptInvite(BaseModel):
    workspace_id: str
    username: str | None = None


class DeclineInvite(BaseModel):
    workspace_id: str


class WorkspaceInvite(BaseModel):
    workspace_id: str
    email: str
    is_admin: bool
    operator: bool
