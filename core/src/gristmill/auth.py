"""Who is calling: passwords, API tokens, job tokens and the first admin account.

The full model (workspace roles, groups, folders, scopes) comes later; for now every
authenticated caller may use the default workspace.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from uuid import UUID

import psycopg

from gristmill.db.queries import Q

__all__ = [
    "Actor",
    "ensure_first_admin",
    "hash_password",
    "hash_token",
    "job_token_secret",
    "mint_job_token",
    "new_api_token",
    "read_job_token",
    "verify_password",
]

SUPERADMIN_SECRET_EMAIL = "superadmin_secret@gristmill.local"
DEFAULT_ADMIN_EMAIL = "admin@gristmill.local"
_JOB_TOKEN_PREFIX = "jt."
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class Actor:
    """The identity a request (or a job) acts as."""

    email: str
    username: str
    super_admin: bool = False
    #: Set when the caller is a job using its ``WM_TOKEN``.
    job_id: UUID | None = None

    @property
    def permissioned_as(self) -> str:
        return f"u/{self.username}"


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; a damaged stored value matches nothing."""
    parts = (stored or "").split("$")
    if len(parts) != 3 or parts[0] != "scrypt":
        return False
    try:
        salt, expected = base64.b64decode(parts[1]), base64.b64decode(parts[2])
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return hmac.compare_digest(digest, expected)


def hash_token(token: str) -> str:
    """Tokens are stored hashed: a leaked table does not leak usable tokens."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_token() -> str:
    return secrets.token_urlsafe(24)


async def create_api_token(
    conn: psycopg.AsyncConnection,
    *,
    email: str,
    label: str | None,
    expiration: dt.datetime | None,
) -> str:
    token = new_api_token()
    await conn.execute(
        Q["insert_token"],
        {
            "token_hash": hash_token(token),
            "token_prefix": token[:10],
            "email": email,
            "label": label,
            "expiration": expiration,
        },
    )
    return token


def job_token_secret(conn: psycopg.Connection) -> bytes:
    """The instance's key for job tokens, created by the first process that asks."""
    row = conn.execute(
        Q["init_setting"],
        {"name": "job_token_secret", "value": json.dumps(secrets.token_hex(32))},
    ).fetchone()
    assert row is not None
    return bytes.fromhex(row[0])


def mint_job_token(secret: bytes, *, job_id: UUID, email: str, username: str) -> str:
    """A job's ``WM_TOKEN``: signed, so issuing one costs no database write.

    It is valid while its job is queued or running (checked when it is used).
    """
    payload = base64.urlsafe_b64encode(
        json.dumps([str(job_id), email, username], separators=(",", ":")).encode()
    ).decode()
    signature = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"{_JOB_TOKEN_PREFIX}{payload}.{signature}"


def read_job_token(secret: bytes, token: str) -> Actor | None:
    """The actor of a well-signed job token (its job's liveness is checked by the caller)."""
    if not token.startswith(_JOB_TOKEN_PREFIX):
        return None
    payload, _, signature = token[len(_JOB_TOKEN_PREFIX) :].rpartition(".")
    expected = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
    # Compared as bytes: the token is whatever a client sent, possibly not ASCII.
    if not payload or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        job_id, email, username = json.loads(base64.urlsafe_b64decode(payload))
        return Actor(email=email, username=username, job_id=UUID(job_id))
    except (ValueError, TypeError):
        return None


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
    return NewAdmin(email, password) if created else None
