"""Groups: a group with its members, a new group, an edit, a member."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EditGroup", "Group", "GroupMember", "NewGroup"]


class Group(BaseModel):
    """A group (Windmill's Group)."""

    name: str
    summary: str | None = None
    members: list[str] = Field(default_factory=list)
    extra_perms: dict[str, bool] = Field(default_factory=dict)


class NewGroup(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    summary: str | None = None


class EditGroup(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary: str | None = None


class GroupMember(BaseModel):
    model_config = ConfigDict(extra="ignore")

    username: str
