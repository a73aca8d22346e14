"""Workspaces: which exist, creating, listing and (soft) deleting them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from gristmill.auth import audit
from gristmill.auth.actor import SUPERADMIN_SECRET_EMAIL, Actor
from gristmill.auth.permissions import WORKSPACE_ID, Access, Role, check_workspace_id
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, NotFound
from gristmill.validation import check_no_nul, check_page, short

__all__ = [
    "DEFAULT_WORKSPACE",
    "NEW_WORKSPACE_ID",
    "WORKSPACE_ID",
    "Workspace",
    "check_new_workspace_id",
    "create_workspace",
    "delete_workspace",
    "get_workspace",
    "list_all_workspaces",
    "list_user_workspaces",
    "require_workspace",
    "workspace_exists",
]

#: Windmill's rule for a new id (``^\w+(-\w+)*$``, at most 50 characters), in ASCII.
NEW_WORKSPACE_ID = re.compile(r"[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*", re.ASCII)
MAX_WORKSPACE_ID = 50
MAX_WORKSPACE_NAME = 100
#: The workspace created with the instance, where the first admin is; never deleted.
DEFAULT_WORKSPACE = "main"


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    owner: str | None
    deleted: bool = False
    #: The caller's membership is disabled (lists of the caller's workspaces only).
    disabled: bool = False


def check_new_workspace_id(workspace_id: str) -> str:
    if len(workspace_id) > MAX_WORKSPACE_ID or not NEW_WORKSPACE_ID.fullmatch(workspace_id):
        raise BadInput(
            f"invalid workspace id {short(workspace_id)!r}: 1 to {MAX_WORKSPACE_ID} ASCII "
            "letters, digits and '_', in words joined by single '-' (e.g. 'team-data')"
        )
    return workspace_id


async def workspace_exists(pool: AsyncConnectionPool, workspace_id: str) -> bool:
    """Whether a (not deleted) workspace has this id; ``False`` for an impossible id."""
    if not WORKSPACE_ID.fullmatch(workspace_id):
        return False
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["workspace_exists"], {"workspace_id": workspace_id})
        ).fetchone()
    return row is not None


async def require_workspace(pool: AsyncConnectionPool, workspace_id: str) -> str:
    """``workspace_id`` if it exists (and is not deleted): :class:`BadInput` for an id no
    workspace can have, :class:`NotFound` otherwise. Not cached: a workspace deleted by one
    server process stops being served by every other at once."""
    check_workspace_id(workspace_id)
    if not await workspace_exists(pool, workspace_id):
        raise NotFound(f"workspace '{workspace_id}' does not exist")
    return workspace_id


async def create_workspace(
    pool: AsyncConnectionPool,
    actor: Actor,
    *,
    workspace_id: str,
    name: str,
    require_superadmin: bool,
) -> str:
    """A new workspace whose creator becomes its admin.

    ``require_superadmin`` (``CREATE_WORKSPACE_REQUIRE_SUPERADMIN``) limits this to super
    admins. A token limited to one workspace (a job's, or a scoped one) cannot create others.
    """
    if require_superadmin and not actor.super_admin:
        raise Forbidden(
            "only super admins may create workspaces on this instance "
            "(CREATE_WORKSPACE_REQUIRE_SUPERADMIN=true)"
        )
    if actor.token_workspace is not None:
        raise Forbidden(
            f"this token is limited to workspace '{actor.token_workspace}'; "
            "it cannot create workspaces"
        )
    check_new_workspace_id(workspace_id)
    check_no_nul("name", name)
    name = name.strip()
    if not name:
        raise BadInput("name must not be empty")
    if len(name) > MAX_WORKSPACE_NAME:
        raise BadInput(f"name is longer than {MAX_WORKSPACE_NAME} characters")
    async with pool.connection() as conn:
        taken = await (
            await conn.execute(Q["workspace_id_taken"], {"workspace_id": workspace_id})
        ).fetchone()
        created = (
            None
            if taken
            else await (
                await conn.execute(
                    Q["insert_workspace"],
                    {"workspace_id": workspace_id, "name": name, "owner": actor.email},
                )
            ).fetchone()
        )
        if created is None:
            deleted = (
                " (a deleted workspace had it; ids are not reused)" if taken and taken[0] else ""
            )
            raise Conflict(f"workspace '{workspace_id}' already exists{deleted}")
        # The SUPERADMIN_SECRET identity has no account to be a member with; it is an admin
        # of every workspace anyway.
        if actor.email != SUPERADMIN_SECRET_EMAIL:
            await conn.execute(
                Q["add_member"],
                {
                    "workspace_id": workspace_id,
                    "email": actor.email,
                    "role": Role.ADMIN.value,
                    "added_by": actor.username,
                },
            )
        await audit.record_instance(
            conn,
            actor,
            "workspaces.create",
            audit.ActionKind.CREATE,
            workspace_id,
            parameters={"name": name},
        )
    return workspace_id


async def get_workspace(pool: AsyncConnectionPool, workspace_id: str) -> Workspace:
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["get_workspace"], {"workspace_id": workspace_id})
        ).fetchone()
    if row is None:
        raise NotFound(f"workspace '{workspace_id}' does not exist")
    return Workspace(id=row[0], name=row[1], owner=row[2], deleted=row[3])


async def list_user_workspaces(pool: AsyncConnectionPool, actor: Actor) -> list[Workspace]:
    """The workspaces the caller is a member of; for a super admin (an admin of every
    workspace), all of them."""
    async with pool.connection() as conn:
        if actor.super_admin:
            rows = await (
                await conn.execute(
                    Q["list_all_workspaces"],
                    {"include_deleted": False, "limit": 100_000, "offset": 0},
                )
            ).fetchall()
            return [Workspace(id=r[0], name=r[1], owner=r[2], deleted=r[3]) for r in rows]
        rows = await (
            await conn.execute(Q["list_user_workspaces"], {"email": actor.email})
        ).fetchall()
    return [Workspace(id=r[0], name=r[1], owner=r[2], disabled=r[3]) for r in rows]


async def list_all_workspaces(
    pool: AsyncConnectionPool, actor: Actor, *, page: int, per_page: int
) -> list[Workspace]:
    """Every workspace, deleted ones included (super admins only)."""
    if not actor.super_admin:
        raise Forbidden(f"listing every workspace needs a super admin; {actor.username} is not one")
    check_page(page, per_page)
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["list_all_workspaces"],
                {"include_deleted": True, "limit": per_page, "offset": (page - 1) * per_page},
            )
        ).fetchall()
    return [Workspace(id=r[0], name=r[1], owner=r[2], deleted=r[3]) for r in rows]


async def delete_workspace(pool: AsyncConnectionPool, access: Access) -> None:
    """Mark the workspace deleted (admins): it stops being served at once; its rows stay
    (Windmill's archive). The default workspace cannot be deleted."""
    access.require_admin()
    workspace_id = access.workspace_id
    if workspace_id == DEFAULT_WORKSPACE:
        raise BadInput(f"the default workspace '{DEFAULT_WORKSPACE}' cannot be deleted")
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["soft_delete_workspace"], {"workspace_id": workspace_id})
        ).fetchone()
        if row is None:
            raise NotFound(f"workspace '{workspace_id}' does not exist")
        await audit.record(
            conn,
            workspace_id=workspace_id,
            username=access.username,
            operation="workspaces.delete",
            action_kind=audit.ActionKind.DELETE,
            resource=workspace_id,
        )
