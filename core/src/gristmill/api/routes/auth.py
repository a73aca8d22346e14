"""Logging in and out, and who the caller is."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import (
    ActorDep,
    AuthenticatedRoute,
    PlatformDep,
    bearer_token,
)
from gristmill.api.schemas.auth import Login, WhoAmI
from gristmill.auth.users import SESSION_DAYS, log_in

__all__ = ["public_router", "router"]

public_router = APIRouter(tags=["auth"])
router = APIRouter(tags=["auth"], route_class=AuthenticatedRoute)


@public_router.post("/auth/login", response_class=PlainTextResponse)
async def login(body: Login, platform: PlatformDep) -> PlainTextResponse:
    """Exchange an email and password for a token (also set as the ``token`` cookie)."""
    token = await log_in(platform.db, body.email, body.password)
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
    assert platform.tokens is not None and token is not None
    await platform.tokens.revoke(token)
    response = PlainTextResponse("logged out")
    response.delete_cookie("token")
    return response


@router.get("/users/whoami")
async def whoami(actor: ActorDep) -> WhoAmI:
    """The caller's identity."""
    return WhoAmI(
        email=actor.email,
        username=actor.username,
        super_admin=actor.super_admin,
        is_admin=actor.super_admin,
        job_id=str(actor.job_id) if actor.job_id else None,
    )
