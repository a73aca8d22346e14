"""The calls of HTTP routes (``/api/r/{route_path}``, any of get/post/put/delete/patch) and
Windmill's ``POST /api/w/{workspace}/http_triggers/route_exists``.

The routes under ``/api/r/`` are not token-authenticated by the route class: each HTTP route's
``authentication_method`` decides (:func:`gristmill.triggers.http.call_route`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep, bearer_token
from gristmill.triggers.http import (
    HTTP_METHODS,
    HttpMethod,
    RouteRequest,
    call_route,
    preflight,
)
from gristmill.triggers.webhooks import HttpAnswer

if TYPE_CHECKING:
    from gristmill.server.platform import Platform
    from gristmill.triggers.http import HttpRouteKind

__all__ = ["RouteExists", "http_routers"]


class RouteExists(BaseModel):
    """Windmill's ``route_exists`` request."""

    route_path: str
    http_method: HttpMethod
    trigger_path: str | None = Field(
        default=None, description="The route being edited, left out of the comparison."
    )
    workspaced_route: bool = False


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_CALL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "sync: the result (any JSON); a result object with "
        "`windmill_status_code`, `windmill_content_type` or `windmill_headers` sets the status, "
        "content type and headers, and its `result` is the body.",
        "content": {"application/json": {"schema": {}}},
    },
    201: {"description": "async: the id of the job started.", "content": _TEXT},
    401: {
        "description": "The route's authentication refused the request (a token, an API key, "
        "basic credentials or a signature missing or wrong).",
        "content": _TEXT,
    },
    405: {"description": "Routes answer this path for other methods only.", "content": _TEXT},
    415: {"description": "A body of a content type routes do not take.", "content": _TEXT},
    422: {
        "description": "sync: the job failed; its error object `{error: {name, message, stack}}`.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


def _response(answer: HttpAnswer, headers: dict[str, str]) -> Response:
    return Response(
        content=answer.body,
        media_type=answer.content_type,
        status_code=answer.status,
        headers=headers,
    )


def http_routers(kind: HttpRouteKind) -> list[APIRouter]:
    """The router calling ``kind``'s routes and the one with ``route_exists``."""
    calls = APIRouter(prefix="/r", tags=["http_triggers"])

    async def call(route_path: str, request: Request) -> Response:
        platform: Platform = request.app.state.platform
        assert platform.tokens is not None
        answer, job_id = await call_route(
            kind,
            platform.triggers,
            platform.tokens,
            RouteRequest(
                method=request.method,
                url_path=route_path,
                headers={k.lower(): v for k, v in request.headers.items()},
                query=dict(request.query_params),
                body=await request.body(),
                token=bearer_token(request),
            ),
        )
        headers = dict(answer.headers)
        if job_id is not None:
            headers["x-job-id"] = str(job_id)
        return _response(answer, headers)

    for method in HTTP_METHODS:
        calls.add_api_route(
            "/{route_path:path}",
            call,
            methods=[method.upper()],
            name=f"call_http_route_{method}",
            summary=f"Call the HTTP route answering {method.upper()} at route_path",
            response_class=Response,
            responses=_CALL_RESPONSES,
            openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}}}
            if method != "get"
            else None,
        )

    async def options(route_path: str, request: Request) -> Response:
        # Browsers ask before a cross-origin call with a JSON body or a token.
        platform: Platform = request.app.state.platform
        answer = await preflight(
            kind,
            platform.triggers,
            route_path,
            request.headers.get("origin"),
            request.headers.get("access-control-request-method"),
        )
        return _response(answer, answer.headers)

    calls.add_api_route("/{route_path:path}", options, methods=["OPTIONS"], include_in_schema=False)

    manage = APIRouter(
        prefix="/w/{workspace}/http_triggers",
        tags=["http_triggers"],
        route_class=AuthenticatedRoute,
    )

    @manage.post("/route_exists", name="http_route_exists")
    async def route_exists(body: RouteExists, access: AccessDep, platform: PlatformDep) -> bool:
        """Whether an enabled route of this method already answers the URLs of
        ``route_path`` (the same route with parameter names ignored, in the same scope)."""
        other = await kind.collision(
            platform.triggers,
            access.workspace_id,
            body.route_path.strip().strip("/"),
            body.http_method,
            body.workspaced_route,
            body.trigger_path,
        )
        return other is not None

    return [calls, manage]
