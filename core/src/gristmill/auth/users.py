"""Users: who a request (or a job) acts as, logging in, and the first admin account.

The full model (workspace roles, groups, folders, scopes) comes with workspaces; for now
every authenticated caller may use the default workspace.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.passwords import hash_password, verify_password
from gristmill.auth.tokens import create_api_token, hash_token, new_api_token, token_owner
from gristmill.db.queries import Q
from gristmill.errors import BadInput
from gristmill.validation import check_no_nul

__all__ = [
    "DEFAULT_ADMIN_EMAIL",
    "SESSION_DAYS",
    "NewAdmin",
    "ensure_first_admin",
    "first_admin_email",
    "log_in",
]

DEFAULT_ADMIN_EMAIL = "admin@gristmill.local"
#: How long a login token lasts.
SESSION_DAYS = 3


async def log_in(pool: AsyncConnectionPool, email: str, password: str) -> str:
    """A new session token for ``email`` and ``password``; :class:`BadInput` otherwise."""
    email = email.strip().lower()
    check_no_nul("email", email)
    async with pool.connection() as conn:
        row = await (await conn.execute(Q["get_user"], {"email": email})).fetchone()
        if row is None or not verify_password(password, row[2]):
            raise BadInput("Invalid login")
        expiration = dt.datetime.now(dt.UTC) + dt.timedelta(days=SESSION_DAYS)
        return await create_api_token(conn, email=email, label="session", expiration=expiration)


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
