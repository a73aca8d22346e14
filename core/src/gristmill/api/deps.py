"""Request dependencies: the platform, the calling actor, the workspace."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from gristmill.auth.actor import Actor
from gristmill.server.platform import Platform

__all__ = [
    "ActorDep",
    "AuthenticatedRoute",
    "PlatformDep",
    "WorkspaceDep",
    "authenticate",
    "bearer_token",
    "check_workspace",
]


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


async def authenticate(request: Request) -> Actor:
    """The actor of a request's token; 401 without a valid one. Resolved once per request
    (:class:`AuthenticatedRoute` does it first; dependencies then reuse it)."""
    actor = getattr(request.state, "actor", None)
    if actor is None:
        platform: Platform = request.app.state.platform
        assert platform.tokens is not None
        actor = await platform.tokens.resolve(bearer_token(request))
        request.state.actor = actor
    return actor


class AuthenticatedRoute(APIRoute):
    """A route that authenticates before anything else of the request is looked at.

    FastAPI reads and parses a JSON body before it runs a route's dependencies, so a request
    without a token and with a malformed body would get 400 (telling an anonymous caller
    about the endpoint's input) where it must get 401. This route class resolves the token
    first; the dependencies that need the actor get the same one (:func:`authenticate`).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def authenticated(request: Request) -> Response:
            await authenticate(request)
            return await handler(request)

        return authenticated


async def check_workspace(request: Request, workspace: str) -> str:
    """``workspace`` if it exists; 404 otherwise."""
    platform: Platform = request.app.state.platform
    assert platform.workspaces is not None
    return await platform.workspaces.require(workspace)


ActorDep = Annotated[Actor, Depends(authenticate)]


async def current_workspace(workspace: str, request: Request, actor: ActorDep) -> str:
    return await check_workspace(request, workspace)


WorkspaceDep = Annotated[str, Depends(current_workspace)]
