"""Logging in and out."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AuthenticatedRoute, PlatformDep, bearer_token
from gristmill.api.schemas.auth import Login
from gristmill.auth.throttle import LoginLimits
from gristmill.auth.users import SESSION_DAYS, log_in

__all__ = ["public_router", "router"]

public_router = APIRouter(tags=["auth"])
router = APIRouter(tags=["auth"], route_class=AuthenticatedRoute)

_THROTTLED: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "`Too many requests: ...`: too many failed logins for this account or "
        "from this address recently (GRISTMILL_LOGIN_MAX_FAILURES, ..._PER_ADDRESS, "
        "GRISTMILL_LOGIN_WINDOW_S); `Retry-After` says when to try again.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@public_router.post("/auth/login", response_class=PlainTextResponse, responses=_THROTTLED)
async def login(body: Login, request: Request, platform: PlatformDep) -> PlainTextResponse:
    """Exchange an email and password for a token (also set as the ``token`` cookie).

    Failed logins are throttled per account and per address (the TCP peer as uvicorn sees
    it; uvicorn takes ``X-Forwarded-For`` only from ``FORWARDED_ALLOW_IPS``, 127.0.0.1 by
    default)."""
    settings = platform.settings
    token = await log_in(
        platform.db,
        body.email,
        body.password,
        address=request.client.host if request.client else "unknown",
        limits=LoginLimits(
            max_failures=settings.login_max_failures,
            max_failures_per_address=settings.login_max_failures_per_address,
            window_s=settings.login_window_s,
        ),
    )
    response = PlainTextResponse(token)
    response.set_cookie(
        "token",
        token,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
    )
    return response


async def _logout(request: Request, platform: PlatformDep) -> PlainTextResponse:
    token = bearer_token(request)
    assert platform.tokens is not None and token is not None
    await platform.tokens.revoke(token)
    response = PlainTextResponse("logged out")
    response.delete_cookie("token")
    return response


@router.post("/auth/logout", response_class=PlainTextResponse)
async def logout(request: Request, platform: PlatformDep) -> PlainTextResponse:
    """Revoke the token of this request and clear the ``token`` cookie."""
    return await _logout(request, platform)


@router.get("/auth/logout", response_class=PlainTextResponse)
async def logout_get(request: Request, platform: PlatformDep) -> PlainTextResponse:
    """As ``POST /auth/logout`` (Windmill's UI logs out with GET)."""
    return await _logout(request, platform)
