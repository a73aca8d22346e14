"""Resources: typed JSON values at a path (a database connection, a bucket, a script's
state), readable by whom the path and ACLs allow, with ``$var:``/``$res:`` references
expanded on request (:func:`get_value_interpolated`) and in job arguments
(:func:`resolve_references`).

Permissions are the items' rule (:class:`gristmill.auth.permissions.Access`), a resource
the caller may not read is answered as missing (404); with one exception: a job may read and
write its own state, the resource of type ``state`` at its ``WM_STATE_PATH``, even when its
user is an operator or the path lies under another user's script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.actor import Actor
from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access, load_access
from gristmill.auth.tokens import job_user_super_admin
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, Conflict, Forbidden, NotFound
from gristmill.scripts.paths import check_path
from gristmill.validation import check_json, check_no_nul, check_page, short
from gristmill.workspace.interpolate import interpolate
from gristmill.workspace.resource_types import STATE_TYPE, require_type, validate_value
from gristmill.workspace.secrets import Secrets
from gristmill.workspace.variables import read_variable_value

__all__ = [
    "ResourceEdit",
    "ResourceRow",
    "create_resource",
    "delete_resource",
    "get_resource",
    "get_value_interpolated",
    "job_access",
    "list_resources",
    "resolve_job_references",
    "resolve_references",
    "resource_exists",
    "update_resource",
    "update_value",
]


@dataclass(frozen=True)
class ResourceRow:
    path: str
    value: Any
    description: str | None
    resource_type: str
    extra_perms: dict[str, Any]
    created_by: str | None
    edited_at: datetime


@dataclass(frozen=True)
class ResourceEdit:
    """The fields of an update; ``None`` keeps a field as it is (``value`` needs
    ``set_value``, since ``null`` is a value)."""

    path: str | None = None
    value: Any = None
    set_value: bool = False
    description: str | None = None
    resource_type: str | None = None


def _can_read(access: Access, path: str, extra_perms: Mapping[str, Any] | None) -> bool:
    # A job reads its own state even under another user's script path.
    return access.state_path == path or access.can_read(path, extra_perms)


def _may_write(access: Access, row_type: str, path: str, extra_perms: Mapping[str, Any]) -> None:
    if row_type == STATE_TYPE and access.state_path == path:
        return
    access.require_write(path, extra_perms)


def _not_found(path: str) -> NotFound:
    return NotFound(f"resource {short(path)} not found (or not visible to you)")


async def _fetch(conn: psycopg.AsyncConnection, workspace_id: str, path: str) -> ResourceRow | None:
    row = await (
        await conn.execute(Q["get_resource"], {"workspace_id": workspace_id, "path": path})
    ).fetchone()
    return ResourceRow(*row) if row is not None else None


async def _visible(conn: psycopg.AsyncConnection, access: Access, path: str) -> ResourceRow:
    check_no_nul("path", path)
    row = await _fetch(conn, access.workspace_id, path)
    if row is None or not _can_read(access, path, row.extra_perms):
        raise _not_found(path)
    return row


async def list_resources(
    pool: AsyncConnectionPool,
    access: Access,
    *,
    resource_type: str | None = None,
    path_start: str | None = None,
    page: int = 1,
    per_page: int = 100,
) -> list[ResourceRow]:
    """The resources the caller may read, by path; ``resource_type`` may list several
    names separated by commas (Windmill's filter)."""
    check_page(page, per_page)
    check_no_nul("resource_type", resource_type)
    check_no_nul("path_start", path_start)
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["list_resources"],
                {
                    "workspace_id": access.workspace_id,
                    "resource_type": resource_type or None,
                    "path_start": like_prefix(path_start) if path_start else None,
                    "limit": per_page,
                    "offset": (page - 1) * per_page,
                    **access.sql_params(),
                },
            )
        ).fetchall()
    return [ResourceRow(*row) for row in rows]


async def get_resource(pool: AsyncConnectionPool, access: Access, path: str) -> ResourceRow:
    async with pool.connection() as conn:
        return await _visible(conn, access, path)


async def resource_exists(pool: AsyncConnectionPool, access: Access, path: str) -> bool:
    """Whether a resource the caller may see is at ``path``."""
    try:
        await get_resource(pool, access, path)
    except NotFound:
        return False
    return True


# -- references ---------------------------------------------------------------------------------


async def resolve_references(
    conn: psycopg.AsyncConnection,
    secrets: Secrets,
    access: Access,
    value: Any,
    *,
    job_id: UUID | None = None,
) -> Any:
    """``value`` with its ``$var:``/``$res:`` references replaced, each read with
    ``access``'s permissions; :class:`NotFound` names a missing or invisible one. A secret
    read this way is audited and, for a job, masked in its logs, as through the API."""

    async def read_variable(path: str) -> str:
        return await read_variable_value(conn, secrets, access, path, job_id=job_id)

    async def read_resource(path: str) -> Any:
        return (await _visible(conn, access, path)).value

    return await interpolate(value, read_variable=read_variable, read_resource=read_resource)


async def job_access(
    conn: psycopg.AsyncConnection,
    *,
    workspace_id: str,
    email: str,
    username: str,
    state_path: str | None,
    superadmin_secret_set: bool,
) -> Access:
    """What a job may read: its user's access to its workspace today (a removed member's
    jobs lose it). A job started with ``SUPERADMIN_SECRET`` acts as a super admin."""
    super_admin = await job_user_super_admin(
        conn, email, superadmin_secret_set=superadmin_secret_set
    )
    # A user deleted since is no super admin; load_access then finds no membership either.
    actor = Actor(email, username, super_admin=bool(super_admin), state_path=state_path)
    return await load_access(conn, actor, workspace_id)


async def resolve_job_references(
    conn: psycopg.AsyncConnection,
    secrets: Secrets,
    access: Access,
    *,
    args: Mapping[str, Any],
    resource_paths: Sequence[str],
    job_id: UUID,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job's arguments with their references replaced, and the values of the resources
    its code names (by path); :class:`NotFound`/:class:`Forbidden` for one it may not read."""
    resolved = await resolve_references(conn, secrets, access, dict(args), job_id=job_id)
    named = {
        path: await resolve_references(conn, secrets, access, f"$res:{path}", job_id=job_id)
        for path in resource_paths
    }
    return resolved, named


async def get_value_interpolated(
    pool: AsyncConnectionPool, secrets: Secrets, access: Access, path: str
) -> Any:
    async with pool.connection() as conn:
        row = await _visible(conn, access, path)
        return await resolve_references(conn, secrets, access, row.value)


# -- writes --------------------------------------------------------------------------------------


#: Longer paths are refused before the database's index would (a 500).
MAX_PATH_LENGTH = 1000


def _check_fields(path: str, value: Any, description: str | None) -> None:
    check_path(path)
    if len(path) > MAX_PATH_LENGTH:
        raise BadInput(f"path is {len(path)} characters long, over {MAX_PATH_LENGTH}")
    check_no_nul("description", description)
    check_json("value", value)
    try:
        orjson.dumps(value)
    except TypeError as exc:
        # Integers beyond 64 bits, which the JSON columns cannot take through orjson.
        raise BadInput(f"value cannot be stored: {exc}") from None


async def create_resource(
    pool: AsyncConnectionPool,
    access: Access,
    *,
    path: str,
    value: Any,
    resource_type: str,
    description: str | None,
) -> None:
    """A new resource; a type's schema checks its value (400 names the failing fields)."""
    _check_fields(path, value, description)
    check_no_nul("resource_type", resource_type)
    _may_write(access, resource_type, path, {})
    async with pool.connection() as conn, conn.transaction():
        rtype = await require_type(conn, access.workspace_id, resource_type)
        validate_value(rtype, value)
        row = await (
            await conn.execute(
                Q["insert_resource"],
                {
                    "workspace_id": access.workspace_id,
                    "path": path,
                    "value": Jsonb(value),
                    "description": description,
                    "resource_type": resource_type,
                    "created_by": access.username,
                },
            )
        ).fetchone()
        if row is None:
            raise Conflict(f"resource {path} already exists")
        await record_access(
            conn,
            access,
            "resources.create",
            ActionKind.CREATE,
            path,
            parameters={"resource_type": resource_type},
        )


async def _write(
    conn: psycopg.AsyncConnection, access: Access, row: ResourceRow, edit: ResourceEdit
) -> None:
    new_path = edit.path if edit.path is not None else row.path
    value = edit.value if edit.set_value else row.value
    description = edit.description if edit.description is not None else row.description
    resource_type = edit.resource_type if edit.resource_type is not None else row.resource_type
    _check_fields(new_path, value, description)
    check_no_nul("resource_type", resource_type)
    if new_path != row.path:
        access.require_write(new_path)
        if await _fetch(conn, access.workspace_id, new_path) is not None:
            raise Conflict(f"resource {new_path} already exists")
    rtype = await require_type(conn, access.workspace_id, resource_type)
    validate_value(rtype, value)
    await conn.execute(
        Q["update_resource"],
        {
            "workspace_id": access.workspace_id,
            "path": row.path,
            "new_path": new_path,
            "value": Jsonb(value),
            "description": description,
            "resource_type": resource_type,
        },
    )
    await record_access(
        conn,
        access,
        "resources.update",
        ActionKind.UPDATE,
        row.path,
        parameters={"path": new_path} if new_path != row.path else None,
    )


async def _writable(conn: psycopg.AsyncConnection, access: Access, path: str) -> ResourceRow:
    row = await _visible(conn, access, path)
    _may_write(access, row.resource_type, path, row.extra_perms)
    return row


async def update_resource(
    pool: AsyncConnectionPool, access: Access, path: str, edit: ResourceEdit
) -> None:
    async with pool.connection() as conn, conn.transaction():
        row = await _writable(conn, access, path)
        moved = edit.path not in (None, path)
        retyped = edit.resource_type not in (None, row.resource_type)
        if (moved or retyped) and not access.can_write(path, row.extra_perms):
            # A job's own state stays its state: the exception covers nothing else.
            raise Forbidden(f"{access.username} may only change the value of the state {path}")
        await _write(conn, access, row, edit)


async def update_value(pool: AsyncConnectionPool, access: Access, path: str, value: Any) -> None:
    async with pool.connection() as conn, conn.transaction():
        row = await _writable(conn, access, path)
        await _write(conn, access, row, ResourceEdit(value=value, set_value=True))


async def delete_resource(pool: AsyncConnectionPool, access: Access, path: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        row = await _writable(conn, access, path)
        await conn.execute(
            Q["delete_resource"], {"workspace_id": access.workspace_id, "path": row.path}
        )
        await record_access(
            conn,
            access,
            "resources.delete",
            ActionKind.DELETE,
            path,
        )
