"""API errors: plain-text bodies with Windmill's prefixes (``Bad request: ...``).

Domain code raises :mod:`gristmill.errors`' kinds (:class:`~gristmill.errors.BadInput`,
:class:`~gristmill.errors.NotFound`, ...); the handlers here give each its status, so that
routes need no ``try``.
"""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gristmill.errors import (
    BadInput,
    Forbidden,
    NotFound,
    RepeatMismatch,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from gristmill.queue.waiting import ServerStopping, WaitTimeout
from gristmill.validation import TooLarge

__all__ = ["STOPPING_RETRY_AFTER_S", "install_error_handlers"]

#: The ``Retry-After`` of the answers of a stopping server: about the time a restart takes
#: (another server behind the same address answers at once).
STOPPING_RETRY_AFTER_S = 5


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = error.get("msg", "invalid value")
        if error.get("type") == "json_invalid":
            ctx = error.get("ctx") or {}
            message = f"the request body is not valid JSON ({ctx.get('error', 'parse error')})"
            location = ""
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> PlainTextResponse:
        return PlainTextResponse(f"Payload too large: {exc}", status_code=413)

    @app.exception_handler(BadInput)
    async def _bad_input(request: Request, exc: BadInput) -> PlainTextResponse:
        return PlainTextResponse(f"Bad request: {exc}", status_code=400)

    @app.exception_handler(RepeatMismatch)
    async def _repeat_mismatch(request: Request, exc: RepeatMismatch) -> PlainTextResponse:
        # Not a 400: the request is valid, but its job_id or Idempotency-Key is taken by a
        # job it does not match (RFC 9110's 409, as payment APIs answer a reused key).
        return PlainTextResponse(f"Conflict: {exc}", status_code=409)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> PlainTextResponse:
        return PlainTextResponse(f"Not found: {exc}", status_code=404)

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized) -> PlainTextResponse:
        return PlainTextResponse(
            f"Not authorized: {exc}", status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> PlainTextResponse:
        return PlainTextResponse(f"Forbidden: {exc}", status_code=403)

    @app.exception_handler(TooManyRequests)
    async def _too_many(request: Request, exc: TooManyRequests) -> PlainTextResponse:
        return PlainTextResponse(
            f"Too many requests: {exc}",
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> PlainTextResponse:
        return PlainTextResponse(str(exc), status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ServerStopping)
    async def _stopping(request: Request, exc: ServerStopping) -> PlainTextResponse:
        # The job's id also as the header a synchronous run's answer carries.
        return PlainTextResponse(
            str(exc),
            status_code=503,
            headers={"Retry-After": str(STOPPING_RETRY_AFTER_S), "x-job-id": str(exc.job_id)},
        )

    @app.exception_handler(WaitTimeout)
    async def _wait_timeout(request: Request, exc: WaitTimeout) -> PlainTextResponse:
        # Windmill answers a run_wait_result that outlives its wait with a 500 and this text;
        # the job itself is fine and keeps running.
        return PlainTextResponse(str(exc), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> PlainTextResponse:
        return PlainTextResponse(f"Bad request: {_describe_validation(exc)}", status_code=400)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _database_error(request: Request, exc: Exception) -> PlainTextResponse:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return PlainTextResponse(
            "Service unavailable: the database cannot be reached right now "
            f"({reason}); retry in a moment (to make a retried run safe, give it a job_id: "
            "a second run with the same id is refused)",
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> PlainTextResponse:
        prefix = {404: "Not found: ", 405: "Method not allowed: "}.get(exc.status_code, "")
        detail = exc.detail
        headers = exc.headers
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}"
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            detail = f"{request.method} {request.url.path} (allowed: {allowed})"
            headers = {**(headers or {}), "Allow": allowed}
        return PlainTextResponse(f"{prefix}{detail}", status_code=exc.status_code, headers=headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route answers at this path. Starlette's own 405 names only the
    first route that matched the path, and GET and POST of one path are two routes here."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)
