"""Members with roles for the permission tests: users, their tokens, other workspaces.

One place for this set-up, so that the tests can switch to the users and workspaces API
once it exists without changing the tests themselves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import httpx

from gristmill.auth.passwords import hash_password
from gristmill.auth.tokens import create_api_token
from gristmill.db.queries import Q
from gristmill.server.platform import Platform

__all__ = ["Member", "add_member", "create_workspace"]


@dataclass(frozen=True)
class Member:
    """A user acting through the API with their own token."""

    api: httpx.AsyncClient
    username: str
    email: str
    token: str
    #: The workspace the tests' helpers act in for them: the one ``add_member`` added them to.
    workspace: str = "main"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.api.get(url, headers=self._headers(), **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.api.post(url, headers=self._headers(), **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.api.delete(url, headers=self._headers(), **kwargs)


@functools.cache
def _unused_password_hash() -> str:
    """The stored hash of members who never log in: computed once (argon2 costs a good part
    of a second by design; five members per test paid it five times)."""
    return hash_password("not-used-here")


async def create_workspace(platform: Platform, workspace_id: str) -> None:
    async with platform.db.connection() as conn:
        await conn.execute(Q["testing_insert_workspace"], {"id": workspace_id})


async def add_member(
    platform: Platform,
    api: httpx.AsyncClient,
    username: str,
    role: str,
    workspace_id: str = "main",
) -> Member:
    """A user ``username`` (email ``<username>@example.com``; new unless an earlier call
    made them), member of ``workspace_id`` with ``role``, and a new API token of theirs."""
    email = f"{username}@example.com"
    async with platform.db.connection() as conn:
        await conn.execute(
            Q["insert_user"],
            {
                "email": email,
                "username": username,
                "password_hash": _unused_password_hash(),
                "super_admin": False,
            },
        )
        await conn.execute(
            Q["add_member"],
            {"workspace_id": workspace_id, "email": email, "role": role, "added_by": None},
        )
        token = await create_api_token(conn, email=email, label="test", expiration=None)
    return Member(api, username, email, token, workspace_id)
