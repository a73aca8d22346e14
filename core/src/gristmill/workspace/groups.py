"""Groups of a workspace: named sets of members that ACLs and folders grant access to
(``g/<name>``).

Every member sees every group. Non-operators create groups (the creator becomes a writer
of the new group: ``extra_perms = {"u/<creator>": true}``); admins and the group's writers
(its ``extra_perms`` set to ``true``) change its summary and members and delete it. The group
``all`` is implicit: it has every enabled member, is listed, and is never changed or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import ALL_GROUP, Access
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, NotFound
from gristmill.validation import check_no_nul
from gristmill.workspace.acls import check_name

__all__ = [
    "Group",
    "add_member",
    "create_group",
    "delete_group",
    "get_group",
    "list_group_names",
    "list_groups",
    "remove_member",
    "update_group",
]

_ALL_SUMMARY = "The group every member of the workspace belongs to"


@dataclass(frozen=True)
class Group:
    name: str
    summary: str | None
    members: list[str]
    extra_perms: dict[str, bool] = field(default_factory=dict)


def _group(row: dict[str, Any]) -> Group:
    return Group(row["name"], row["summary"], list(row["members"]), dict(row["extra_perms"]))


async def _all_group(conn: psycopg.AsyncConnection, workspace_id: str) -> Group:
    rows = await (
        await conn.execute(Q["workspace_usernames"], {"workspace_id": workspace_id})
    ).fetchall()
    return Group(ALL_GROUP, _ALL_SUMMARY, [r[0] for r in rows])


async def list_groups(pool: AsyncConnectionPool, access: Access) -> list[Group]:
    """Every group of the workspace with its members, ``all`` first."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["list_groups"], {"workspace_id": access.workspace_id})
        rows = await cur.fetchall()
        return [await _all_group(conn, access.workspace_id), *(_group(r) for r in rows)]


async def list_group_names(pool: AsyncConnectionPool, access: Access) -> list[str]:
    return [g.name for g in await list_groups(pool, access)]


async def _fetch(conn: psycopg.AsyncConnection, workspace_id: str, name: str) -> Group:
    check_name("group name", name)
    if name == ALL_GROUP:
        return await _all_group(conn, workspace_id)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q["get_group"], {"workspace_id": workspace_id, "name": name})
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"group {name} not found")
    return _group(row)


async def get_group(pool: AsyncConnectionPool, access: Access, name: str) -> Group:
    async with pool.connection() as conn:
        return await _fetch(conn, access.workspace_id, name)


def _require_manager(access: Access, group: Group) -> None:
    if group.name == ALL_GROUP:
        raise BadInput("the group 'all' is every member of the workspace: it cannot be changed")
    if access.is_admin:
        return
    owners = set(access.owners)
    if not access.is_operator and any(group.extra_perms.get(k) is True for k in owners):
        return
    raise Forbidden(
        f"{access.username} may not manage group {group.name}: only workspace admins and "
        "the group's writers may"
    )


async def create_group(
    pool: AsyncConnectionPool, access: Access, name: str, summary: str | None
) -> None:
    access.require_not_operator()
    check_name("group name", name)
    check_no_nul("summary", summary)
    if name == ALL_GROUP:
        raise Conflict("Group all already exists (every member belongs to it)")
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                Q["insert_group"],
                {
                    "workspace_id": access.workspace_id,
                    "name": name,
                    "summary": summary,
                    "extra_perms": Jsonb({f"u/{access.username}": True}),
                },
            )
        ).fetchone()
        if row is None:
            raise Conflict(f"Group {name} already exists")
        await record_access(conn, access, "group.create", ActionKind.CREATE, name)


async def update_group(
    pool: AsyncConnectionPool, access: Access, name: str, summary: str | None
) -> None:
    check_no_nul("summary", summary)
    async with pool.connection() as conn, conn.transaction():
        _require_manager(access, await _fetch(conn, access.workspace_id, name))
        await conn.execute(
            Q["update_group_summary"],
            {"workspace_id": access.workspace_id, "name": name, "summary": summary},
        )
        await record_access(conn, access, "group.edit", ActionKind.UPDATE, name)


async def delete_group(pool: AsyncConnectionPool, access: Access, name: str) -> None:
    """Delete a group and its memberships. ACL entries naming ``g/<name>`` stay (a group
    created again with that name gets them back, as in Windmill)."""
    async with pool.connection() as conn, conn.transaction():
        _require_manager(access, await _fetch(conn, access.workspace_id, name))
        await conn.execute(Q["delete_group"], {"workspace_id": access.workspace_id, "name": name})
        await record_access(conn, access, "group.delete", ActionKind.DELETE, name)


async def _membership(
    pool: AsyncConnectionPool, access: Access, name: str, username: str, add: bool
) -> None:
    check_name("username", username)
    params = {"workspace_id": access.workspace_id, "name": name, "username": username}
    async with pool.connection() as conn, conn.transaction():
        _require_manager(access, await _fetch(conn, access.workspace_id, name))
        if add:
            member = await (await conn.execute(Q["is_workspace_username"], params)).fetchone()
            if member is None:
                raise BadInput(f"{username} is not a member of workspace '{access.workspace_id}'")
            await conn.execute(Q["add_group_member"], params)
        else:
            removed = await (await conn.execute(Q["remove_group_member"], params)).fetchone()
            if removed is None:
                raise BadInput(f"{username} is not a member of group {name}")
        await record_access(
            conn,
            access,
            "group.adduser" if add else "group.removeuser",
            ActionKind.UPDATE,
            name,
            parameters={"username": username},
        )


async def add_member(pool: AsyncConnectionPool, access: Access, name: str, username: str) -> None:
    """Add a workspace member to the group (again: no change)."""
    await _membership(pool, access, name, username, add=True)


async def remove_member(
    pool: AsyncConnectionPool, access: Access, name: str, username: str
) -> None:
    await _membership(pool, access, name, username, add=False)
