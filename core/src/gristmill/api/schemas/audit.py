"""The audit log's entries (Windmill's AuditLog)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel

__all__ = ["AuditLog"]


class AuditLog(BaseModel):
    id: int
    timestamp: dt.datetime
    username: str
    #: Dotted, e.g. ``variables.decrypt_secret``, ``users.login``, ``jobs.run.script``.
    operation: str
    #: ``Create``, ``Update``, ``Delete`` or ``Execute``.
    action_kind: str
    resource: str | None = None
    parameters: dict[str, Any] | None = None
