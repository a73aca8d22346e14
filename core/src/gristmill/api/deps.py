"""Request dependencies: the platform, the calling actor, the workspace."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import AfterValidator

from gristmill.auth.actor import Actor
from gristmill.auth.permissions import (
    WORKSPACE_ID,
    Access,
    access_from_row,
    load_access,
    scope_allows,
)
from gristmill.errors import Forbidden
from gristmill.server.platform import Platform
from gristmill.validation import INT4_MAX
from gristmill.workspace.workspaces import require_workspace

__all__ = [
    "AccessDep",
    "ActorDep",
    "AuthenticatedRoute",
    "Page",
    "PlatformDep",
    "RouteScope",
    "WorkspaceDep",
    "authenticate",
    "bearer_token",
    "check_workspace",
    "scope_refusal",
    "token_source",
]


#: The ``page`` of a list (1-based). Windmill counts page 0 as the first page, and its CLI
#: starts its paging loops at 0 (``wmill script list``, ``wmill resource list``): 0 must work.
Page = Annotated[
    int,
    Query(ge=0, le=INT4_MAX, description="1-based; 0 is the first page too"),
    AfterValidator(lambda page: max(page, 1)),
]


def get_platform(request: Request) -> Platform:
    return request.app.state.platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def token_source(request: Request) -> Literal["header", "cookie", "query"] | None:
    """Where the request's token is: ``Authorization: Bearer``, the ``token`` cookie (the web
    UI's session), or ``?token=`` (webhook URLs), looked for in that order."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return "header"
    if request.cookies.get("token"):
        return "cookie"
    if request.query_params.get("token"):
        return "query"
    return None


def bearer_token(request: Request) -> str | None:
    """The token of a request: ``Authorization: Bearer``, the ``token`` cookie, or ``?token=``."""
    match token_source(request):
        case "header":
            return request.headers["authorization"].partition(" ")[2].strip()
        case "cookie":
            return request.cookies["token"]
        case "query":
            return request.query_params["token"]
        case None:
            return None


async def authenticate(request: Request) -> Actor:
    """The actor of a request's token; 401 without a valid one. Resolved once per request
    (:class:`AuthenticatedRoute` does it first; dependencies then reuse it)."""
    actor = getattr(request.state, "actor", None)
    if actor is None:
        platform: Platform = request.app.state.platform
        assert platform.tokens is not None
        workspace = request.path_params.get("workspace")
        if not (isinstance(workspace, str) and WORKSPACE_ID.fullmatch(workspace)):
            workspace = None
        # On a workspace route, the token's owner and their access in one round trip.
        actor, request.state.access_row = await platform.tokens.resolve_in(
            bearer_token(request), workspace
        )
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

        scope = route_scope(self.path_format, self.methods or set())

        async def authenticated(request: Request) -> Response:
            actor = await authenticate(request)
            check_token_limits(actor, request, scope)
            return await handler(request)

        return authenticated


#: The reads of one job by id that any ``jobs:run`` scope allows: a webhook token follows
#: the job it started (Windmill's list of such paths, those Gristmill has).
_JOB_READS = frozenset(
    {
        "get/{id}",
        "getupdate/{id}",
        "get_logs/{id}",
        "get_root_job_id/{id}",
        "completed/get/{id}",
        "completed/get_result/{id}",
        "completed/get_result_maybe/{id}",
    }
)


@dataclass(frozen=True)
class RouteScope:
    """What an operation needs of a token's scopes (see :func:`scope_allows`)."""

    domain: str
    action: str
    #: ``scripts`` or ``flows`` for a run endpoint.
    kind: str | None = None
    #: A read of one job by id, which any ``jobs:run`` scope allows.
    follows_run: bool = False
    #: A run by hash: the script's path (what scopes name) is known only once it is read.
    by_hash: bool = False


def route_scope(path_format: str, methods: set[str]) -> RouteScope:
    """The scope domain and action of an operation: ``/w/{workspace}/variables/get/{path}``
    with GET is ``variables:read``; a run endpoint of ``jobs`` is ``jobs:run`` of a kind
    (``run/f/...`` runs a flow, ``run/p/...`` a script)."""
    parts = [p for p in path_format.removeprefix("/api").split("/") if p]
    if parts[:2] == ["w", "{workspace}"]:
        parts = parts[2:]
    domain = (parts[0] if parts else "").removesuffix("_u")
    if domain == "jobs" and len(parts) > 1 and parts[1].startswith("run"):
        target = parts[2] if len(parts) > 2 else ""
        kind = (
            "flows"
            if target in ("f", "preview_flow")
            else "scripts"
            if target in ("p", "h", "preview")
            else None
        )
        return RouteScope(domain, "run", kind=kind, by_hash=target == "h")
    action = "read" if methods <= {"GET", "HEAD"} else "write"
    follows = domain == "jobs" and action == "read" and "/".join(parts[1:]) in _JOB_READS
    return RouteScope(domain, action, follows_run=follows)


def check_token_limits(actor: Actor, request: Request, scope: RouteScope) -> None:
    """Refuse what the token's workspace or scopes exclude (403), before the route runs."""
    workspace = request.path_params.get("workspace")
    if actor.token_workspace and workspace and workspace != actor.token_workspace:
        raise Forbidden(
            f"this token is limited to workspace '{actor.token_workspace}', not '{workspace}'"
        )
    path = request.path_params.get("path")
    if not scope_allows(
        actor.scopes,
        scope.domain,
        scope.action,
        path,
        kind=scope.kind,
        follows_run=scope.follows_run,
        any_path=scope.by_hash,
    ):
        raise scope_refusal(actor, scope.domain, scope.action, path, scope.kind)


def scope_refusal(
    actor: Actor, domain: str, action: str, path: str | None, kind: str | None = None
) -> Forbidden:
    """The 403 of an operation the token's scopes do not allow, naming what it needs."""
    needed = f"{domain}:{action}" + (f":{kind}" if kind else "")
    return Forbidden(
        f"this token's scopes ({', '.join(actor.scopes or ())}) do not allow "
        f"{needed}" + (f" on {path!r}" if path else "")
    )


async def check_workspace(request: Request, workspace: str) -> str:
    """``workspace`` if it exists; 404 otherwise."""
    platform: Platform = request.app.state.platform
    return await require_workspace(platform.db, workspace)


ActorDep = Annotated[Actor, Depends(authenticate)]


async def current_access(workspace: str, request: Request, actor: ActorDep) -> Access:
    """The caller's access to ``workspace``: 404 when it does not exist, 403 when the caller
    is not a member (every workspace route checks this)."""
    access = getattr(request.state, "access", None)
    if access is None:
        row = getattr(request.state, "access_row", None)
        if row is not None:
            access = access_from_row(actor, workspace, row)
        else:
            platform: Platform = request.app.state.platform
            async with platform.db.connection() as conn:
                access = await load_access(conn, actor, workspace)
        request.state.access = access
    return access


AccessDep = Annotated[Access, Depends(current_access)]


async def current_workspace(access: AccessDep) -> str:
    return access.workspace_id


WorkspaceDep = Annotated[str, Depends(current_workspace)]
