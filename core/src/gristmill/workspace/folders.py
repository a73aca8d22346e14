"""Folders: the ``f/<folder>/...`` items of a workspace, with owners and an ACL.

A folder's ``owners`` (``u/x``, ``g/y``) administer it and write its items; its
``extra_perms`` grant read (``false``) or write (``true``) on its items. A member sees a
folder they own or that names them (directly or through a group); admins see them all. An
item may only be created at ``f/<folder>/...`` when the folder exists
(:func:`require_folder_of`). Deleting a folder leaves its items (as Windmill): they are
then visible to admins only, until a folder of that name exists again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, NotFound
from gristmill.validation import MAX_PER_PAGE, check_no_nul, check_page
from gristmill.workspace.acls import check_name, check_owner, check_perms

__all__ = [
    "Folder",
    "FolderChange",
    "FolderUsage",
    "add_owner",
    "create_folder",
    "delete_folder",
    "folder_exists",
    "folder_usage",
    "get_folder",
    "is_owner",
    "list_folder_names",
    "list_folders",
    "remove_owner",
    "require_folder_of",
    "update_folder",
]


@dataclass(frozen=True)
class Folder:
    name: str
    display_name: str
    summary: str | None
    owners: list[str]
    extra_perms: dict[str, bool]
    created_by: str | None
    edited_at: Any


@dataclass(frozen=True)
class FolderChange:
    """A new folder or an update: ``None`` keeps (or, for a new folder, defaults) a field."""

    summary: str | None = None
    display_name: str | None = None
    owners: list[str] | None = None
    extra_perms: dict[str, Any] | None = field(default=None)

    def check(self) -> None:
        check_no_nul("summary", self.summary)
        check_no_nul("display_name", self.display_name)
        for owner in self.owners or ():
            check_owner(owner, field="owners entry")
        if self.extra_perms is not None:
            check_perms(self.extra_perms)


@dataclass(frozen=True)
class FolderUsage:
    scripts: int
    flows: int
    apps: int
    resources: int
    variables: int
    schedules: int


def _folder(row: dict[str, Any]) -> Folder:
    return Folder(
        name=row["name"],
        display_name=row["display_name"],
        summary=row["summary"],
        owners=list(row["owners"]),
        extra_perms=dict(row["extra_perms"]),
        created_by=row["created_by"],
        edited_at=row["edited_at"],
    )


def _visible(access: Access, name: str) -> bool:
    return access.is_admin or name in access.folders_read or name in access.folders_owned


def _owns(access: Access, name: str) -> bool:
    return access.is_admin or name in access.folders_owned


def _visibility(access: Access) -> dict[str, Any]:
    return {
        "workspace_id": access.workspace_id,
        "is_admin": access.is_admin,
        "owners": access.owners,
    }


async def list_folders(
    pool: AsyncConnectionPool, access: Access, page: int = 1, per_page: int = MAX_PER_PAGE
) -> list[Folder]:
    """The folders the caller sees (all of them for an admin), by name."""
    check_page(page, per_page)
    params = {**_visibility(access), "limit": per_page, "offset": (page - 1) * per_page}
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["list_folders"], params)
        return [_folder(r) for r in await cur.fetchall()]


async def list_folder_names(pool: AsyncConnectionPool, access: Access) -> list[str]:
    async with pool.connection() as conn:
        rows = await (await conn.execute(Q["list_folder_names"], _visibility(access))).fetchall()
    return [r[0] for r in rows]


async def _fetch(conn: psycopg.AsyncConnection, access: Access, name: str) -> Folder:
    """The folder; 404 when it does not exist or the caller cannot see it."""
    check_name("folder name", name)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q["get_folder"], {"workspace_id": access.workspace_id, "name": name})
    row = await cur.fetchone()
    if row is None or not _visible(access, name):
        raise NotFound(f"Folder {name} not found")
    return _folder(row)


async def get_folder(pool: AsyncConnectionPool, access: Access, name: str) -> Folder:
    async with pool.connection() as conn:
        return await _fetch(conn, access, name)


async def folder_exists(pool: AsyncConnectionPool, access: Access, name: str) -> bool:
    """Whether a folder of that name exists (visible or not: a name is taken either way)."""
    check_name("folder name", name)
    async with pool.connection() as conn:
        return await _exists(conn, access.workspace_id, name)


async def _exists(conn: psycopg.AsyncConnection, workspace_id: str, name: str) -> bool:
    row = await (
        await conn.execute(Q["folder_exists"], {"workspace_id": workspace_id, "name": name})
    ).fetchone()
    return row is not None


async def require_folder_of(conn: psycopg.AsyncConnection, workspace_id: str, path: str) -> None:
    """For a path ``f/<folder>/...``: :class:`BadInput` unless the folder exists (items
    cannot be created in a folder that does not exist, as in Windmill)."""
    kind, _, rest = path.partition("/")
    if kind != "f":
        return
    name = rest.partition("/")[0]
    if not await _exists(conn, workspace_id, name):
        raise BadInput(f"folder {name} does not exist: create it first ({path!r} is in it)")


async def create_folder(
    pool: AsyncConnectionPool, access: Access, name: str, change: FolderChange
) -> None:
    """A new folder. Its owners are those sent plus the creator (``u/<me>``); its
    ``extra_perms`` default to write for each owner (Windmill's default)."""
    access.require_not_operator()
    check_name("folder name", name)
    change.check()
    me = f"u/{access.username}"
    owners = list(dict.fromkeys([*(change.owners or []), me]))
    extra_perms = (
        change.extra_perms if change.extra_perms is not None else dict.fromkeys(owners, True)
    )
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                Q["insert_folder"],
                {
                    "workspace_id": access.workspace_id,
                    "name": name,
                    "display_name": change.display_name or name,
                    "summary": change.summary,
                    "owners": owners,
                    "extra_perms": Jsonb(extra_perms),
                    "created_by": access.username,
                },
            )
        ).fetchone()
        if row is None:
            raise Conflict(f"Folder {name} already exists")
        await record_access(conn, access, "folder.create", ActionKind.CREATE, name)


def _require_owner(access: Access, folder: Folder) -> None:
    if not _owns(access, folder.name):
        raise Forbidden(
            f"{access.username} is not an owner of folder {folder.name}: only its owners "
            "and workspace admins may change it"
        )


async def update_folder(
    pool: AsyncConnectionPool, access: Access, name: str, change: FolderChange
) -> None:
    change.check()
    async with pool.connection() as conn, conn.transaction():
        _require_owner(access, await _fetch(conn, access, name))
        await conn.execute(
            Q["update_folder"],
            {
                "workspace_id": access.workspace_id,
                "name": name,
                "summary": change.summary,
                "display_name": change.display_name,
                "owners": change.owners,
                "extra_perms": Jsonb(change.extra_perms)
                if change.extra_perms is not None
                else None,
            },
        )
        await record_access(conn, access, "folder.update", ActionKind.UPDATE, name)


async def delete_folder(pool: AsyncConnectionPool, access: Access, name: str) -> None:
    """Delete the folder (its items stay; see the module's docstring)."""
    async with pool.connection() as conn, conn.transaction():
        _require_owner(access, await _fetch(conn, access, name))
        await conn.execute(Q["delete_folder"], {"workspace_id": access.workspace_id, "name": name})
        await record_access(conn, access, "folder.delete", ActionKind.DELETE, name)


async def _owner_change(
    pool: AsyncConnectionPool, access: Access, name: str, owner: str, add: bool
) -> None:
    check_owner(owner)
    params = {"workspace_id": access.workspace_id, "name": name, "owner": owner}
    async with pool.connection() as conn, conn.transaction():
        _require_owner(access, await _fetch(conn, access, name))
        if add:
            await conn.execute(Q["add_folder_owner"], params)
        else:
            removed = await (await conn.execute(Q["remove_folder_owner"], params)).fetchone()
            if removed is None:
                raise BadInput(f"{owner} is not an owner of folder {name}")
        await record_access(
            conn,
            access,
            "folder.add_owner" if add else "folder.remove_owner",
            ActionKind.UPDATE,
            name,
            parameters={"owner": owner},
        )


async def add_owner(pool: AsyncConnectionPool, access: Access, name: str, owner: str) -> None:
    await _owner_change(pool, access, name, owner, add=True)


async def remove_owner(pool: AsyncConnectionPool, access: Access, name: str, owner: str) -> None:
    await _owner_change(pool, access, name, owner, add=False)


async def folder_usage(pool: AsyncConnectionPool, access: Access, name: str) -> FolderUsage:
    """How many items the folder holds (apps and schedules: none, Gristmill has none yet)."""
    async with pool.connection() as conn:
        await _fetch(conn, access, name)
        row = await (
            await conn.execute(
                Q["folder_usage"], {"workspace_id": access.workspace_id, "name": name}
            )
        ).fetchone()
    assert row is not None
    scripts, resources, variables, flows = row
    return FolderUsage(scripts, flows, 0, resources, variables, 0)


def is_owner(access: Access, name_or_path: str) -> bool:
    """Whether the caller owns the folder (``team``) or the folder of a path
    (``f/team/x``); an admin owns every folder."""
    check_no_nul("path", name_or_path)
    name = name_or_path
    if name_or_path.startswith("f/"):
        name = name_or_path.split("/")[1]
    check_name("folder name", name)
    return _owns(access, name)
