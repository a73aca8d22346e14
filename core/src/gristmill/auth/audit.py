"""The audit log: who did what, when (Windmill's ``audit`` table).

Logins, secret reads, runs, and changes to members, groups, folders and permissions are
recorded with :func:`record`, in the same transaction as the change they describe where
there is one, so a change is never without its entry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.actor import Actor
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, NotFound
from gristmill.validation import check_int, check_no_nul, check_page

__all__ = [
    "INSTANCE",
    "ActionKind",
    "AuditEntry",
    "AuditFilter",
    "get_audit",
    "list_audit",
    "record",
]

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


@dataclass(frozen=True)
class AuditEntry:
    id: int
    timestamp: dt.datetime
    username: str
    operation: str
    action_kind: str
    resource: str | None
    parameters: dict[str, Any] | None


@dataclass(frozen=True)
class AuditFilter:
    """Filters of :func:`list_audit` (``None``: no filter). ``operation`` and ``resource``
    match exactly or as a prefix; ``operations``/``exclude_operations`` are exact names."""

    before: dt.datetime | None = None
    after: dt.datetime | None = None
    username: str | None = None
    operation: str | None = None
    operations: tuple[str, ...] | None = None
    exclude_operations: tuple[str, ...] | None = None
    resource: str | None = None
    action_kind: ActionKind | None = None


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        timestamp=row["timestamp"],
        username=row["username"],
        operation=row["operation"],
        action_kind=row["action_kind"],
        resource=row["resource"],
        parameters=row["parameters"],
    )


async def list_audit(
    pool: AsyncConnectionPool,
    access: Access,
    filters: AuditFilter,
    *,
    page: int = 1,
    per_page: int = 30,
) -> list[AuditEntry]:
    """A workspace's audit log, newest first (workspace admins only)."""
    access.require_admin()
    check_page(page, per_page)
    for name in ("username", "operation", "resource"):
        check_no_nul(name, getattr(filters, name))
    for name in ("operations", "exclude_operations"):
        for item in getattr(filters, name) or ():
            check_no_nul(name, item)
    if filters.before and filters.after and filters.after >= filters.before:
        raise BadInput("after must be earlier than before")
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["list_audit"],
            {
                "workspace_id": access.workspace_id,
                "before": filters.before,
                "after": filters.after,
                "username": filters.username,
                "operation": like_prefix(filters.operation) if filters.operation else None,
                "operations": list(filters.operations) if filters.operations else None,
                "exclude_operations": list(filters.exclude_operations)
                if filters.exclude_operations
                else None,
                "resource": like_prefix(filters.resource) if filters.resource else None,
                "action_kind": filters.action_kind.value if filters.action_kind else None,
                "limit": per_page,
                "offset": (page - 1) * per_page,
            },
        )
        return [_entry(r) for r in await cur.fetchall()]


async def get_audit(pool: AsyncConnectionPool, access: Access, entry_id: int) -> AuditEntry:
    """One entry of the workspace's log (workspace admins only)."""
    access.require_admin()
    check_int("id", entry_id, 1, 2**63 - 1)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["get_audit"], {"workspace_id": access.workspace_id, "id": entry_id})
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"audit log entry {entry_id} not found")
    return _entry(row)


async def record_access(
    conn: psycopg.AsyncConnection,
    access: Access,
    operation: str,
    action_kind: ActionKind,
    resource: str | None,
    *,
    parameters: dict[str, Any] | None = None,
) -> None:
    """:func:`record` an entry of ``access``'s caller in ``access``'s workspace."""
    await record(
        conn,
        workspace_id=access.workspace_id,
        username=access.username,
        operation=operation,
        action_kind=action_kind,
        resource=resource,
        parameters=parameters,
    )


async def record_instance(
    conn: psycopg.AsyncConnection,
    actor: Actor,
    operation: str,
    action_kind: ActionKind,
    resource: str | None,
    *,
    parameters: dict[str, Any] | None = None,
) -> None:
    """:func:`record` an instance-level entry (workspace ``global``) of ``actor``."""
    await record(
        conn,
        workspace_id=INSTANCE,
        username=actor.username,
        operation=operation,
        action_kind=action_kind,
        resource=resource,
        parameters=parameters,
    )
