"""Members of a workspace: listing them, changing their role, adding and removing them, and
invitations (which a user accepts or declines).

Every change is for admins of the workspace (operators and developers can do none of it)
and is audited in the workspace. A workspace always keeps one enabled admin: the last one
cannot be demoted, disabled, removed, nor leave.

Windmill stores ``is_admin``/``operator`` flags; we store one ``role``
(admin | developer | operator) and show both.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth import audit
from gristmill.auth.actor import Actor
from gristmill.auth.permissions import Access, Role, load_access
from gristmill.auth.users import normalize_email
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, NotFound
from gristmill.scripts.paths import check_path
from gristmill.validation import check_no_nul

__all__ = [
    "Invite",
    "Member",
    "accept_invite",
    "access_of",
    "add_user",
    "decline_invite",
    "delete_invite",
    "get_member",
    "invite_user",
    "is_owner",
    "leave",
    "list_invites_of",
    "list_members",
    "list_pending_invites",
    "remove_member",
    "role_of",
    "update_member",
    "username_to_email",
    "whoami",
]


def role_of(is_admin: bool, operator: bool) -> Role:
    """Windmill's two flags as one role (admin wins over operator)."""
    if is_admin:
        return Role.ADMIN
    return Role.OPERATOR if operator else Role.DEVELOPER


@dataclass(frozen=True)
class Member:
    email: str
    username: str
    super_admin: bool
    name: str | None
    role: Role
    disabled: bool
    created_at: dt.datetime
    groups: list[str]


@dataclass(frozen=True)
class Invite:
    workspace_id: str
    email: str
    role: Role


def _member(row: tuple[object, ...]) -> Member:
    email, username, super_admin, name, role, disabled, created_at, groups = row
    return Member(
        email=str(email),
        username=str(username),
        super_admin=bool(super_admin),
        name=name if isinstance(name, str) else None,
        role=Role(str(role)),
        disabled=bool(disabled),
        created_at=created_at,  # type: ignore[arg-type]
        groups=["all", *(g for g in groups if g != "all")],  # type: ignore[union-attr]
    )


async def list_members(pool: AsyncConnectionPool, access: Access) -> list[Member]:
    """The workspace's members (any member may list them, as in Windmill)."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["list_members"], {"workspace_id": access.workspace_id, "username": None}
            )
        ).fetchall()
    return [_member(r) for r in rows]


async def get_member(pool: AsyncConnectionPool, access: Access, username: str) -> Member:
    check_no_nul("username", username)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["list_members"], {"workspace_id": access.workspace_id, "username": username}
            )
        ).fetchone()
    if row is None:
        raise NotFound(f"{username!r} is not a member of workspace '{access.workspace_id}'")
    return _member(row)


async def _keeps_an_admin(conn: psycopg.AsyncConnection, workspace_id: str, email: str) -> None:
    row = await (
        await conn.execute(Q["count_other_admins"], {"workspace_id": workspace_id, "email": email})
    ).fetchone()
    if not row or row[0] == 0:
        raise BadInput(
            f"{email} is the last admin of workspace '{workspace_id}'; make another member "
            "admin first"
        )


async def update_member(
    pool: AsyncConnectionPool,
    access: Access,
    username: str,
    *,
    is_admin: bool | None,
    operator: bool | None,
    disabled: bool | None,
) -> Member:
    """Change a member's role or disable them (admins)."""
    access.require_admin()
    member = await get_member(pool, access, username)
    role = role_of(
        member.role is Role.ADMIN if is_admin is None else is_admin,
        member.role is Role.OPERATOR if operator is None else operator,
    )
    new_disabled = member.disabled if disabled is None else disabled
    async with pool.connection() as conn:
        if member.role is Role.ADMIN and (role is not Role.ADMIN or new_disabled):
            await _keeps_an_admin(conn, access.workspace_id, member.email)
        await conn.execute(
            Q["update_member"],
            {
                "workspace_id": access.workspace_id,
                "email": member.email,
                "role": role.value,
                "disabled": new_disabled,
            },
        )
        await audit.record_access(
            conn,
            access,
            "users.update",
            audit.ActionKind.UPDATE,
            username,
            parameters={"role": role.value, "disabled": new_disabled},
        )
    return await get_member(pool, access, username)


async def remove_member(pool: AsyncConnectionPool, access: Access, username: str) -> None:
    """Remove a member from the workspace (admins); their account stays."""
    access.require_admin()
    member = await get_member(pool, access, username)
    async with pool.connection() as conn:
        if member.role is Role.ADMIN:
            await _keeps_an_admin(conn, access.workspace_id, member.email)
        await _delete_membership(conn, access.workspace_id, member.email, member.username)
        await audit.record_access(
            conn,
            access,
            "users.delete",
            audit.ActionKind.DELETE,
            username,
        )


async def _delete_membership(
    conn: psycopg.AsyncConnection, workspace_id: str, email: str, username: str
) -> None:
    await conn.execute(Q["delete_member"], {"workspace_id": workspace_id, "email": email})
    await conn.execute(
        Q["delete_member_groups"], {"workspace_id": workspace_id, "username": username}
    )


async def leave(pool: AsyncConnectionPool, access: Access) -> None:
    """The caller leaves the workspace (unless they are its last admin)."""
    actor = access.actor
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["get_member"], {"workspace_id": access.workspace_id, "email": actor.email}
            )
        ).fetchone()
        if row is None:
            raise BadInput(f"{actor.username} is not a member of '{access.workspace_id}'")
        if row[0] == Role.ADMIN.value:
            await _keeps_an_admin(conn, access.workspace_id, actor.email)
        await _delete_membership(conn, access.workspace_id, actor.email, actor.username)
        await audit.record(
            conn,
            workspace_id=access.workspace_id,
            username=actor.username,
            operation="workspaces.leave",
            action_kind=audit.ActionKind.DELETE,
            resource=actor.username,
        )


async def _refuse_member(conn: psycopg.AsyncConnection, access: Access, email: str) -> None:
    """:class:`Conflict` when ``email`` is a member of the workspace already."""
    current = await (
        await conn.execute(Q["get_member"], {"workspace_id": access.workspace_id, "email": email})
    ).fetchone()
    if current is not None:
        raise Conflict(f"{email} is already a member of workspace '{access.workspace_id}'")


async def add_user(
    pool: AsyncConnectionPool,
    access: Access,
    *,
    email: str,
    is_admin: bool,
    operator: bool,
    username: str | None,
) -> None:
    """Make an existing user a member (admins). Usernames are instance-wide here: a
    ``username`` other than the user's own is refused."""
    access.require_admin()
    email = normalize_email(email)
    role = role_of(is_admin, operator)
    async with pool.connection() as conn:
        user = await (await conn.execute(Q["get_user"], {"email": email})).fetchone()
        if user is None:
            raise NotFound(f"no user with email {email!r}; create the user first or invite them")
        if username is not None and username != user[1]:
            raise BadInput(
                f"{email} is {user[1]!r} on this instance; usernames are the same in every "
                "workspace (omit username)"
            )
        await _refuse_member(conn, access, email)
        await conn.execute(
            Q["add_member"],
            {
                "workspace_id": access.workspace_id,
                "email": email,
                "role": role.value,
                "added_by": access.username,
            },
        )
        await conn.execute(
            Q["delete_invite"], {"workspace_id": access.workspace_id, "email": email}
        )
        await audit.record_access(
            conn,
            access,
            "workspaces.add_user",
            audit.ActionKind.CREATE,
            user[1],
            parameters={"email": email, "role": role.value},
        )


async def invite_user(
    pool: AsyncConnectionPool, access: Access, *, email: str, is_admin: bool, operator: bool
) -> None:
    """Invite an email (admins); the user, once they have an account, accepts or declines.
    Inviting again replaces the invitation's role."""
    access.require_admin()
    email = normalize_email(email)
    if "@" not in email or email.startswith("@"):
        raise BadInput(f"invalid email {email[:80]!r}")
    role = role_of(is_admin, operator)
    async with pool.connection() as conn:
        await _refuse_member(conn, access, email)
        await conn.execute(
            Q["upsert_invite"],
            {
                "workspace_id": access.workspace_id,
                "email": email,
                "role": role.value,
                "invited_by": access.username,
            },
        )
        await audit.record_access(
            conn,
            access,
            "workspaces.invite_user",
            audit.ActionKind.CREATE,
            email,
            parameters={"role": role.value},
        )


async def delete_invite(pool: AsyncConnectionPool, access: Access, *, email: str) -> None:
    access.require_admin()
    email = normalize_email(email)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["delete_invite"], {"workspace_id": access.workspace_id, "email": email}
            )
        ).fetchone()
        if row is None:
            raise NotFound(f"no invitation of {email!r} to workspace '{access.workspace_id}'")
        await audit.record_access(
            conn,
            access,
            "workspaces.delete_invite",
            audit.ActionKind.DELETE,
            email,
        )


async def list_pending_invites(pool: AsyncConnectionPool, access: Access) -> list[Invite]:
    access.require_admin()
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(Q["list_workspace_invites"], {"workspace_id": access.workspace_id})
        ).fetchall()
    return [Invite(r[0], r[1], Role(r[2])) for r in rows]


async def list_invites_of(pool: AsyncConnectionPool, actor: Actor) -> list[Invite]:
    """The caller's invitations."""
    async with pool.connection() as conn:
        rows = await (await conn.execute(Q["list_user_invites"], {"email": actor.email})).fetchall()
    return [Invite(r[0], r[1], Role(r[2])) for r in rows]


async def accept_invite(
    pool: AsyncConnectionPool, actor: Actor, *, workspace_id: str, username: str | None
) -> None:
    """Join a workspace the caller was invited to, with the invitation's role."""
    check_no_nul("workspace_id", workspace_id)
    if actor.job_id is not None or actor.token_workspace is not None:
        raise BadInput("accept invitations with your own login, not a job's or scoped token")
    if username is not None and username != actor.username:
        raise BadInput(
            f"you are {actor.username!r} on this instance; usernames are the same in every "
            "workspace (omit username)"
        )
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["delete_invite"], {"workspace_id": workspace_id, "email": actor.email}
            )
        ).fetchone()
        exists = await (
            await conn.execute(Q["workspace_exists"], {"workspace_id": workspace_id})
        ).fetchone()
        if row is None or exists is None:
            raise NotFound(f"you have no invitation to workspace '{workspace_id}'")
        await conn.execute(
            Q["add_member"],
            {
                "workspace_id": workspace_id,
                "email": actor.email,
                "role": row[0],
                "added_by": actor.username,
            },
        )
        await audit.record(
            conn,
            workspace_id=workspace_id,
            username=actor.username,
            operation="users.accept_invite",
            action_kind=audit.ActionKind.CREATE,
            resource=actor.username,
            parameters={"role": row[0]},
        )


async def decline_invite(pool: AsyncConnectionPool, actor: Actor, *, workspace_id: str) -> None:
    check_no_nul("workspace_id", workspace_id)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["delete_invite"], {"workspace_id": workspace_id, "email": actor.email}
            )
        ).fetchone()
        if row is None:
            raise NotFound(f"you have no invitation to workspace '{workspace_id}'")
        await audit.record(
            conn,
            workspace_id=workspace_id,
            username=actor.username,
            operation="users.decline_invite",
            action_kind=audit.ActionKind.DELETE,
            resource=actor.email,
        )


async def whoami(pool: AsyncConnectionPool, access: Access) -> Member:
    """The caller as a member; a super admin who is not a member shows as an admin."""
    actor = access.actor
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["list_members"],
                {"workspace_id": access.workspace_id, "username": actor.username},
            )
        ).fetchone()
    if row is not None:
        member = _member(row)
        return dataclasses.replace(member, role=access.role)
    return Member(
        email=actor.email,
        username=actor.username,
        super_admin=actor.super_admin,
        name=None,
        role=access.role,
        disabled=False,
        created_at=dt.datetime.now(dt.UTC),
        groups=sorted(access.groups),
    )


async def access_of(pool: AsyncConnectionPool, access: Access, member: Member) -> Access:
    """What ``member`` may do in the workspace (their folders, for ``whois``)."""
    actor = Actor(email=member.email, username=member.username, super_admin=member.super_admin)
    async with pool.connection() as conn:
        try:
            return await load_access(conn, actor, access.workspace_id)
        except Forbidden:
            # A disabled member: no folders.
            return Access(access.workspace_id, actor, member.role)


async def username_to_email(pool: AsyncConnectionPool, access: Access, username: str) -> str:
    return (await get_member(pool, access, username)).email


def is_owner(access: Access, path: str) -> bool:
    """Whether the caller owns the item at ``path``: an admin, the user of ``u/<me>/...``,
    a member of the group of ``g/<group>/...``, an owner of the folder of ``f/<folder>/...``."""
    check_path(path)
    if access.is_admin:
        return True
    kind, _, rest = path.partition("/")
    name = rest.partition("/")[0]
    if kind == "u":
        return name == access.username
    if kind == "g":
        return name in access.groups
    return name in access.folders_owned
