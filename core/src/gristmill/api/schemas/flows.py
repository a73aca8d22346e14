"""Flows as stored objects (Windmill's ``OpenFlowWPath``, ``Flow``, ``FlowVersion``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ArchiveFlow", "Flow", "FlowListItem", "FlowVersion", "NewFlow"]


class NewFlow(BaseModel):
    """A flow as saved (Windmill's ``OpenFlowWPath`` with ``deployment_message``); fields
    Gristmill does not use (``draft_only``, ``on_behalf_of_email``, ...) are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    path: str
    summary: str = ""
    description: str = ""
    #: The OpenFlow ``FlowValue``: ``{modules: [...], failure_module?, ...}``.
    value: dict[str, Any]
    #: The JSON schema of the flow's inputs.
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    tag: str | None = None
    ws_error_handler_muted: bool = False
    priority: int | None = None
    dedicated_worker: bool = False
    timeout: int | None = None
    visible_to_runner_only: bool = False
    deployment_message: str | None = None


class ArchiveFlow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    #: ``false`` brings an archived flow back.
    archived: bool = True


class _FlowMetadata(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    workspace_id: str
    path: str
    summary: str
    description: str
    edited_by: str
    edited_at: dt.datetime
    archived: bool
    extra_perms: dict[str, bool] = Field(default_factory=dict)
    starred: bool = False
    draft_only: bool = False
    tag: str | None
    ws_error_handler_muted: bool
    priority: int | None
    dedicated_worker: bool
    timeout: int | None
    visible_to_runner_only: bool
    #: The id of the current version (of the version read, from ``get/v/...``).
    version_id: int | None


class Flow(_FlowMetadata):
    """A flow, as Windmill's clients read it (``OpenFlow`` and ``FlowMetadata``)."""

    value: dict[str, Any]
    schema_: dict[str, Any] | None = Field(alias="schema")


class FlowListItem(_FlowMetadata):
    """A flow in a list: without its value and schema."""

    has_draft: bool = False


class FlowVersion(BaseModel):
    id: int
    created_at: dt.datetime
    deployment_msg: str | None
    #: Who saved the version (Gristmill's addition, as in the scripts' history).
    created_by: str
