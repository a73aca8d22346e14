"""Request dependencies: the platform, the calling actor, the workspace."""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import Depends, Request
from gristmill.api.errors import not_found, unauthorized
from gristmill.auth import SUPERADMIN_SECRET_EMAIL, Actor, hash_token, read_job_token
from gristmill.db.queries import Q
from gristmill.platform import Platform

__all__ = [
    "ActorDep",
    "PlatformDep",
    "WorkspaceDep",
    "authenticate",
    "bearer_token",
    "check_workspace",
]

# A token's owner is remembered this long, sparing a database round trip per request.
_TOKEN_CACHE_S = 10.0
_MISSING_TOKEN = (
    "missing or invalid token; send `Authorization: Bearer <token>` "
    "(get a token with POST /api/auth/login)"
)


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def bearer_token(request: Request) -> str | None:
    """The token of a request: ``Authorization: Bearer``, the ``token`` cookie, or ``?token=``."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.cookies.get("token") or request.query_params.get("token") or None


class TokenCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[Actor, float]] = {}

    def get(self, key: str) -> Actor | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] < time.monotonic():
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, actor: Actor) -> None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = (actor, time.monotonic() + _TOKEN_CACHE_S)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)


async def authenticate(request: Request) -> Actor:
    """The actor of a request's token; 401 without a valid one."""
    platform: Platform = request.app.state.platform
    token = bearer_token(request)
    if not token:
        raise unauthorized(_MISSING_TOKEN)
    secret = platform.settings.superadmin_secret
    if secret and hmac.compare_digest(token.encode(), secret.encode()):
        return Actor(SUPERADMIN_SECRET_EMAIL, "superadmin_secret", super_admin=True)
    job_actor = read_job_token(platform.job_token_secret, token)
    assert platform.pool is not None
    if job_actor is not None:
        async with platform.pool.connection() as conn:
            alive = await (
                await conn.execute("SELECT 1 FROM job_queue WHERE id = %s", (job_actor.job_id,))
            ).fetchone()
        if not alive:
            raise unauthorized("this job token belongs to a job that has finished")
        return job_actor
    cache: TokenCache = request.app.state.token_cache
    key = hash_token(token)
    actor = cache.get(key)
    if actor is not None:
        return actor
    async with platform.pool.connection() as conn:
        row = await (await conn.execute(Q["get_token_owner"], {"token_hash": key})).fetchone()
    if row is None:
        raise unauthorized(_MISSING_TOKEN)
    actor = Actor(email=row[0], username=row[1], super_admin=row[2])
    cache.put(key, actor)
    return actor


async def check_workspace(request: Request, workspace: str) -> str:
    """``workspace`` if it exists (known ones are remembered); 404 otherwise."""
    known: set[str] = request.app.state.known_workspaces
    if workspace in known:
        return workspace
    platform: Platform = request.app.state.platform
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        row = await (
            await conn.execute(Q["workspace_exists"], {"workspace_id": workspace})
        ).fetchone()
    if row is None:
        raise not_found(f"workspace '{workspace}' does not exist")
    known.add(workspace)
    return workspace


async def current_actor(request: Request) -> Actor:
    return await authenticate(request)


ActorDep = Annotated[Actor, Depends(current_actor)]


async def current_workspace(workspace: str, request: Request, actor: ActorDep) -> str:
    return await check_workspace(request, workspace)


WorkspaceDep = Annotated[str, Depends(current_workspace)]
