"""The audit log: who did what, when (Windmill's ``audit`` table).

Logins, secret reads, runs, and changes to members, groups, folders and permissions are
recorded with :func:`record`, in the same transaction as the change they describe where
there is one, so a change is never without its entry.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from gristmill.db.queries import Q

__all__ = ["INSTANCE", "ActionKind", "record"]

#: The workspace id of instance-level entries (logins, users, workspaces created).
INSTANCE = "global"


class ActionKind(StrEnum):
    CREATE = "Create"
    UPDATE = "Update"
    DELETE = "Delete"
    EXECUTE = "Execute"


async def record(
    conn: psycopg.AsyncConnection,
    *,
    workspace_id: str,
    username: str,
    operation: str,
    action_kind: ActionKind,
    resource: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> None:
    """Append an entry. ``operation`` is dotted, as Windmill's (``variables.decrypt_secret``,
    ``users.login``, ``jobs.run.script``, ``acls.add``)."""
    await conn.execute(
        Q["insert_audit"],
        {
            "workspace_id": workspace_id,
            "username": username,
            "operation": operation,
            "action_kind": action_kind.value,
            "resource": resource,
            "parameters": Jsonb(parameters) if parameters is not None else None,
        },
    )
