"""Logging in and out, and who the caller is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from gristmill.api.deps import ActorDep, PlatformDep, bearer_token, current_actor
from gristmill.api.errors import bad_request
from gristmill.auth import create_api_token, hash_token, verify_password
from gristmill.db.queries import Q
from pydantic import BaseModel

__all__ = ["public_router", "router"]

public_router = APIRouter(tags=["auth"])
router = APIRouter(tags=["auth"], dependencies=[Depends(current_actor)])

SESSION_DAYS = 3


class Login(BaseModel):
    email: str
    password: str


@public_router.post("/auth/login", response_class=PlainTextResponse)
async def login(body: Login, platform: PlatformDep) -> PlainTextResponse:
    """Exchange an email and password for a token (also set as the ``token`` cookie)."""
    assert platform.pool is not None
    email = body.email.strip().lower()
    async with platform.pool.connection() as conn:
        row = await (await conn.execute(Q["get_user"], {"email": email})).fetchone()
        if row is None or not verify_password(body.password, row[2]):
            raise bad_request("Invalid login")
        expiration = dt.datetime.now(dt.UTC) + dt.timedelta(days=SESSION_DAYS)
        token = await create_api_token(conn, email=email, label="session", expiration=expiration)
    response = PlainTextResponse(token)
    response.set_cookie(
        "token",
        token,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=platform.settings.public_url.startswith("https://"),
    )
    return response


@router.post("/auth/logout", response_class=PlainTextResponse)
async def logout(request: Request, platform: PlatformDep) -> PlainTextResponse:
    """Revoke the token of this request."""
    token = bearer_token(request)
    assert platform.pool is not None and token is not None
    key = hash_token(token)
    async with platform.pool.connection() as conn:
        await conn.execute(Q["delete_token"], {"token_hash": key})
    request.app.state.token_cache.drop(key)
    response = PlainTextResponse("logged out")
    response.delete_cookie("token")
    return response


@router.get("/users/whoami")
async def whoami(actor: ActorDep) -> dict[str, Any]:
    """The caller's identity."""
    return {
        "email": actor.email,
        "username": actor.username,
        "super_admin": actor.super_admin,
        "is_admin": actor.super_admin,
        "job_id": str(actor.job_id) if actor.job_id else None,
    }
