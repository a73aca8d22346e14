"""Resources and resource types (Windmill's field names)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CreateResource",
    "EditResource",
    "EditResourceType",
    "EditResourceValue",
    "NewResourceType",
    "Resource",
    "ResourceType",
]


class ResourceType(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    workspace_id: str
    name: str
    #: The JSON schema of its resources' values; ``null``: any value.
    schema_: dict[str, Any] | None = Field(alias="schema")
    description: str | None
    created_by: str | None
    edited_at: dt.datetime | None
    format_extension: str | None
    #: Shipped with Gristmill (read-only, in every workspace).
    builtin: bool


class NewResourceType(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    format_extension: str | None = None


class EditResourceType(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None


class Resource(BaseModel):
    workspace_id: str
    path: str
    description: str | None
    resource_type: str
    value: Any
    is_oauth: bool = False
    extra_perms: dict[str, Any]
    created_by: str | None
    edited_at: dt.datetime


class CreateResource(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str
    value: Any = None
    description: str | None = None
    resource_type: str


class EditResource(BaseModel):
    """Only the fields sent change (``path`` moves the resource)."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    value: Any = None
    description: str | None = None
    resource_type: str | None = None


class EditResourceValue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: Any = None
