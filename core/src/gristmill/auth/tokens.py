"""Tokens: API tokens (stored hashed), signed job tokens, and resolving a request's token to
the actor it stands for."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.actor import SUPERADMIN_SECRET_EMAIL, Actor
from gristmill.db.queries import Q
from gristmill.errors import Unauthorized

__all__ = [
    "MISSING_TOKEN",
    "TokenResolver",
    "create_api_token",
    "hash_token",
    "job_token_secret",
    "mint_job_token",
    "new_api_token",
    "read_job_token",
    "revoke_token",
    "token_owner",
]

_JOB_TOKEN_PREFIX = "jt."
# A token's owner is remembered this long, sparing a database round trip per request.
_TOKEN_CACHE_S = 10.0
MISSING_TOKEN = (
    "missing or invalid token; send `Authorization: Bearer <token>` "
    "(get a token with POST /api/auth/login)"
)


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


def token_owner(conn: psycopg.Connection, token: str) -> str | None:
    """The email of a valid token's owner (synchronous: for the CLI token at start)."""
    row = conn.execute(Q["get_token_owner"], {"token_hash": hash_token(token)}).fetchone()
    return row[0] if row else None


async def revoke_token(pool: AsyncConnectionPool, token: str) -> None:
    async with pool.connection() as conn:
        await conn.execute(Q["delete_token"], {"token_hash": hash_token(token)})


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


class TokenResolver:
    """Turns a request's token into its actor: the superadmin secret, a job token (valid
    while its job is queued or running), or an API token (its owner remembered briefly)."""

    def __init__(
        self, pool: AsyncConnectionPool, *, job_token_secret: bytes, superadmin_secret: str
    ) -> None:
        self.pool = pool
        self.job_token_secret = job_token_secret
        self.superadmin_secret = superadmin_secret
        self._cache: dict[str, tuple[Actor, float]] = {}

    async def resolve(self, token: str | None) -> Actor:
        """The actor of ``token``; :class:`Unauthorized` without a valid one."""
        if not token:
            raise Unauthorized(MISSING_TOKEN)
        secret = self.superadmin_secret
        if secret and hmac.compare_digest(token.encode(), secret.encode()):
            return Actor(SUPERADMIN_SECRET_EMAIL, "superadmin_secret", super_admin=True)
        job_actor = read_job_token(self.job_token_secret, token)
        if job_actor is not None:
            async with self.pool.connection() as conn:
                alive = await (
                    await conn.execute(Q["job_is_queued"], {"id": job_actor.job_id})
                ).fetchone()
            if not alive:
                raise Unauthorized("this job token belongs to a job that has finished")
            return job_actor
        key = hash_token(token)
        actor = self._cached(key)
        if actor is not None:
            return actor
        async with self.pool.connection() as conn:
            row = await (await conn.execute(Q["get_token_owner"], {"token_hash": key})).fetchone()
        if row is None:
            raise Unauthorized(MISSING_TOKEN)
        actor = Actor(email=row[0], username=row[1], super_admin=row[2])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (actor, time.monotonic() + _TOKEN_CACHE_S)
        return actor

    def _cached(self, key: str) -> Actor | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._cache[key]
            return None
        return entry[0]

    async def revoke(self, token: str) -> None:
        """Revoke an API token; it stops working in this process at once."""
        await revoke_token(self.pool, token)
        self._cache.pop(hash_token(token), None)
