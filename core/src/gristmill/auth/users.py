"""Users of the instance: logging in (throttled), the first admin account, creating and
deleting users (super admins), changing one's password.

Workspace membership is :mod:`gristmill.workspace.members`.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth import audit
from gristmill.auth.actor import Actor
from gristmill.auth.passwords import (
    hash_password,
    hash_password_async,
    needs_rehash,
    verify_password_async,
)
from gristmill.auth.throttle import (
    LoginLimits,
    check_login_allowed,
    clear_failures,
    record_failure,
)
from gristmill.auth.tokens import create_api_token, hash_token, new_api_token, token_owner
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, Forbidden, NotFound
from gristmill.validation import check_no_nul, check_page, short

__all__ = [
    "DEFAULT_ADMIN_EMAIL",
    "SESSION_DAYS",
    "NewAdmin",
    "User",
    "check_password",
    "check_username",
    "create_user",
    "delete_user",
    "ensure_first_admin",
    "first_admin_email",
    "get_user",
    "list_users",
    "log_in",
    "normalize_email",
    "set_password",
]

DEFAULT_ADMIN_EMAIL = "admin@gristmill.local"
#: How long a login token lasts.
SESSION_DAYS = 3
MAX_EMAIL = 255


async def log_in(
    pool: AsyncConnectionPool,
    email: str,
    password: str,
    *,
    address: str,
    limits: LoginLimits,
) -> str:
    """A new session token for ``email`` and ``password``; :class:`BadInput` otherwise, and
    :class:`~gristmill.errors.TooManyRequests` (before the password is looked at) when the
    account or the address ``address`` failed too often recently.

    The password is checked in a thread, with no database connection held meanwhile; an
    unknown email is checked against a dummy hash so it takes as long as a known one.
    """
    email = normalize_email(email)
    check_no_nul("password", password)
    async with pool.connection() as conn:
        await check_login_allowed(conn, limits, email=email, address=address)
        row = await (await conn.execute(Q["get_user"], {"email": email})).fetchone()
    stored: str | None = row[2] if row else None
    ok = await verify_password_async(password, stored) and row is not None
    if not ok:
        async with pool.connection() as conn:
            await record_failure(conn, limits, email=email, address=address)
            await audit.record(
                conn,
                workspace_id=audit.INSTANCE,
                username=email,
                operation="users.login_failed",
                action_kind=audit.ActionKind.EXECUTE,
                resource=email,
                parameters={"address": address},
            )
        raise BadInput("Invalid login")
    assert row is not None and stored is not None
    new_hash = await hash_password_async(password) if needs_rehash(stored) else None
    async with pool.connection() as conn:
        if new_hash is not None:
            await conn.execute(Q["set_password_hash"], {"email": email, "password_hash": new_hash})
        await clear_failures(conn, email=email)
        await audit.record(
            conn,
            workspace_id=audit.INSTANCE,
            username=row[1],
            operation="users.login",
            action_kind=audit.ActionKind.CREATE,
            resource=email,
            parameters={"address": address},
        )
        expiration = dt.datetime.now(dt.UTC) + dt.timedelta(days=SESSION_DAYS)
        return await create_api_token(conn, email=email, label="session", expiration=expiration)


def normalize_email(email: str) -> str:
    """Emails are stored lower-case; refuse what cannot be one."""
    email = email.strip().lower()
    check_no_nul("email", email)
    if len(email) > MAX_EMAIL:
        raise BadInput(f"email is longer than {MAX_EMAIL} characters")
    return email


@dataclass(frozen=True)
class NewAdmin:
    email: str
    password: str


def ensure_first_admin(conn: psycopg.Connection) -> NewAdmin | None:
    """Create the first admin when there are no users; return its credentials, once.

    ``GRISTMILL_ADMIN_EMAIL`` and ``GRISTMILL_ADMIN_PASSWORD`` choose them; otherwise the
    password is random and shown only this one time.
    """
    row = conn.execute(Q["count_users"]).fetchone()
    if row and row[0] > 0:
        return None
    email = os.environ.get("GRISTMILL_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL).strip().lower()
    password = os.environ.get("GRISTMILL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    created = conn.execute(
        Q["insert_user"],
        {
            "email": email,
            "username": "admin",
            "password_hash": hash_password(password),
            "super_admin": True,
        },
    ).fetchone()
    if not created:
        return None
    conn.execute(
        Q["add_member"], {"workspace_id": "main", "email": email, "role": "admin", "added_by": None}
    )
    return NewAdmin(email, password)


def first_admin_email(conn: psycopg.Connection) -> str | None:
    """The email of the oldest super admin (the local CLI acts as them)."""
    row = conn.execute(Q["first_super_admin"]).fetchone()
    return row[0] if row else None


def cli_token_for_first_admin(conn: psycopg.Connection, current: str | None) -> str | None:
    """A new API token of the first admin for the local CLI, unless ``current`` (the token
    kept so far) is still valid; ``None`` when nothing needs writing."""
    if current is not None and token_owner(conn, current) is not None:
        return None
    email = first_admin_email(conn)
    if email is None:
        return None
    token = new_api_token()
    conn.execute(
        Q["insert_token"],
        {
            "token_hash": hash_token(token),
            "token_prefix": token[:10],
            "email": email,
            "label": "cli",
            "expiration": None,
            "scopes": None,
            "workspace_id": None,
        },
    )
    return token


USERNAME = re.compile(r"[A-Za-z0-9_-]{1,50}", re.ASCII)
MAX_PASSWORD = 1024
MAX_NAME = 255


@dataclass(frozen=True)
class User:
    """A user of the instance (Windmill's GlobalUserInfo)."""

    email: str
    username: str
    super_admin: bool
    name: str | None
    created_at: dt.datetime


def _user(row: Sequence[Any]) -> User:
    return User(email=row[0], username=row[1], super_admin=row[2], name=row[3], created_at=row[4])


async def get_user(pool: AsyncConnectionPool, email: str) -> User | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(Q["get_user_full"], {"email": email})).fetchone()
    return _user(row) if row else None


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise BadInput(
            f"invalid username {short(username)!r}: 1 to 50 ASCII letters, digits, '_' or '-'"
        )
    return username


def check_password(password: str) -> str:
    check_no_nul("password", password)
    if not password:
        raise BadInput("password must not be empty")
    if len(password) > MAX_PASSWORD:
        raise BadInput(f"password is longer than {MAX_PASSWORD} characters")
    return password


def _username_from_email(email: str) -> str:
    local = re.sub(r"[^A-Za-z0-9_-]", "_", email.partition("@")[0])[:40]
    return local or "user"


def _require_super_admin(actor: Actor, what: str) -> None:
    if not actor.super_admin:
        raise Forbidden(f"{what} needs a super admin; {actor.username} is not one")


async def create_user(
    pool: AsyncConnectionPool,
    actor: Actor,
    *,
    email: str,
    password: str,
    super_admin: bool = False,
    name: str | None = None,
    username: str | None = None,
) -> User:
    """A new user (super admins only). Without ``username``, one is made from the email."""
    _require_super_admin(actor, "creating users")
    email = normalize_email(email)
    if "@" not in email or email.startswith("@"):
        raise BadInput(f"invalid email {short(email)!r}")
    check_password(password)
    if name is not None:
        check_no_nul("name", name)
        if len(name) > MAX_NAME:
            raise BadInput(f"name is longer than {MAX_NAME} characters")
    if username is not None:
        check_username(username)
    password_hash = await hash_password_async(password)
    async with pool.connection() as conn:
        if await (await conn.execute(Q["get_user"], {"email": email})).fetchone():
            raise Conflict(f"a user with email {email!r} already exists")
        candidates = (
            [username]
            if username is not None
            else [_username_from_email(email)]
            + [f"{_username_from_email(email)}{i}" for i in range(2, 100)]
        )
        for candidate in candidates:
            taken = await (
                await conn.execute(Q["get_user_by_username"], {"username": candidate})
            ).fetchone()
            if taken:
                continue
            row = await (
                await conn.execute(
                    Q["insert_user_named"],
                    {
                        "email": email,
                        "username": candidate,
                        "password_hash": password_hash,
                        "super_admin": super_admin,
                        "name": name,
                    },
                )
            ).fetchone()
            if row is None:
                continue
            await audit.record_instance(
                conn,
                actor,
                "users.create",
                audit.ActionKind.CREATE,
                email,
                parameters={"username": candidate, "super_admin": super_admin},
            )
            created = await (await conn.execute(Q["get_user_full"], {"email": email})).fetchone()
            assert created is not None
            return _user(created)
    raise Conflict(f"username {username or _username_from_email(email)!r} already exists")


async def set_password(
    pool: AsyncConnectionPool, actor: Actor, password: str, *, current_token: str | None
) -> None:
    """Change the caller's own password; their other login sessions are revoked."""
    check_password(password)
    if actor.job_id is not None:
        raise Forbidden("a job's token cannot change its user's password")
    password_hash = await hash_password_async(password)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["set_password_hash"], {"email": actor.email, "password_hash": password_hash}
            )
        ).fetchone()
        if row is None:
            raise BadInput(f"{actor.username} is not a user with a password (no account)")
        await conn.execute(
            Q["delete_other_sessions"],
            {"email": actor.email, "keep": hash_token(current_token or "")},
        )
        await audit.record_instance(
            conn,
            actor,
            "users.setpassword",
            audit.ActionKind.UPDATE,
            actor.email,
        )


async def list_users(
    pool: AsyncConnectionPool, actor: Actor, *, page: int, per_page: int
) -> list[User]:
    """Every user of the instance (super admins only)."""
    _require_super_admin(actor, "listing the users of the instance")
    check_page(page, per_page)
    offset, limit = (page - 1) * per_page, per_page
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(Q["list_users"], {"limit": limit, "offset": offset})
        ).fetchall()
    return [_user(r) for r in rows]


async def delete_user(pool: AsyncConnectionPool, actor: Actor, email: str) -> None:
    """Delete a user, with their memberships and tokens (super admins only)."""
    _require_super_admin(actor, "deleting users")
    email = normalize_email(email)
    if email == actor.email:
        raise BadInput("you cannot delete your own account")
    async with pool.connection() as conn:
        row = await (await conn.execute(Q["delete_user"], {"email": email})).fetchone()
        if row is None:
            raise NotFound(f"no user with email {email!r}")
        await audit.record_instance(
            conn,
            actor,
            "users.delete",
            audit.ActionKind.DELETE,
            email,
        )
