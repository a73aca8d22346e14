"""Jobs: running scripts (by path, by hash, or as a preview), waiting for results, reading
state and logs, cancelling."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
import psycopg
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from gristmill.api.deps import (
    ActorDep,
    PlatformDep,
    WorkspaceDep,
    authenticate,
    check_workspace,
    current_actor,
)
from gristmill.api.errors import ApiError, bad_request, not_found
from gristmill.api.routes.scripts import check_path, get_script_row_by_hash, script_error_message
from gristmill.auth import Actor
from gristmill.db.queries import Q
from gristmill.jobs import (
    NewJob,
    StaleScriptError,
    cancel_job,
    format_hash,
    get_job,
    get_logs,
    lock_error_message,
    logs_since,
    parse_hash,
    push_claimed_job,
    push_failed_job,
    push_job,
)
from gristmill.notify import JobDone
from gristmill.platform import Platform
from gristmill.runtime import ScriptError, UnknownRuntimeError, error_result
from gristmill.schema import ArgumentError, signature_to_schema, validate_args
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["router", "unauthed_router"]

# Every endpoint authenticates through WorkspaceDep or RunContextDep (one dependency for
# the hot run endpoints: FastAPI's dependency resolution is a measurable part of a job).
router = APIRouter(prefix="/w/{workspace}/jobs", tags=["jobs"])
# Windmill's `jobs_u` paths; Gristmill still requires a token on them.
unauthed_router = APIRouter(
    prefix="/w/{workspace}/jobs_u", tags=["jobs"], dependencies=[Depends(current_actor)]
)

_ARGS_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"name": "world"},
            }
        },
        "description": 'The script\'s arguments (a non-object body becomes `{"body": ...}`).',
    }
}


class RunOptions(BaseModel):
    """Query parameters shared by the run endpoints."""

    model_config = ConfigDict(extra="ignore")

    scheduled_for: dt.datetime | None = None
    scheduled_in_secs: int | None = None
    tag: str | None = None
    job_id: UUID | None = None
    parent_job: UUID | None = None
    timeout: int | None = None

    def when(self) -> dt.datetime | None:
        if self.scheduled_in_secs is not None:
            return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.scheduled_in_secs)
        if self.scheduled_for is not None and self.scheduled_for.tzinfo is None:
            return self.scheduled_for.replace(tzinfo=dt.UTC)
        return self.scheduled_for


_NO_OPTIONS = RunOptions()


def run_options(request: Request) -> RunOptions:
    """The run options of the query string; the common case (none) costs no validation."""
    params = request.query_params
    if not any(name in params for name in RunOptions.model_fields):
        return _NO_OPTIONS
    try:
        return RunOptions.model_validate(dict(params))
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise bad_request(details) from None


_RUN_PARAMETERS = [
    {
        "name": "scheduled_for",
        "in": "query",
        "schema": {"type": "string", "format": "date-time"},
        "description": "Run at this time rather than now.",
    },
    {
        "name": "scheduled_in_secs",
        "in": "query",
        "schema": {"type": "integer"},
        "description": "Run this many seconds from now.",
    },
    {
        "name": "tag",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Worker tag to run on (default: the script's tag or language).",
    },
    {
        "name": "job_id",
        "in": "query",
        "schema": {"type": "string", "format": "uuid"},
        "description": "Id for the new job, chosen by the caller.",
    },
    {"name": "parent_job", "in": "query", "schema": {"type": "string", "format": "uuid"}},
    {
        "name": "timeout",
        "in": "query",
        "schema": {"type": "integer"},
        "description": "Seconds the job may run (capped by the instance's TIMEOUT).",
    },
]
_ARGS_BODY["parameters"] = _RUN_PARAMETERS
_RUN_EXTRA: dict[str, Any] = {"parameters": _RUN_PARAMETERS}


class Preview(BaseModel):
    model_config = ConfigDict(extra="ignore")

    content: str
    language: str
    args: dict[str, Any] = {}
    path: str | None = None
    tag: str | None = None
    #: The script's lock (as stored on a version); without it the worker resolves one.
    lock: str | None = None


def parse_args_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the request body is not valid JSON ({exc})") from None
    return value if isinstance(value, dict) else {"body": value}


def _check_args(schema: dict[str, Any] | None, args: dict[str, Any]) -> dict[str, Any]:
    try:
        return validate_args(schema, args)
    except ArgumentError as exc:
        raise bad_request(str(exc)) from None


@dataclass(frozen=True)
class RunContext:
    """Who runs what where: everything a run endpoint needs, resolved as one dependency."""

    platform: Platform
    actor: Actor
    workspace: str
    options: RunOptions


async def run_context(request: Request, workspace: str) -> RunContext:
    actor = await authenticate(request)
    await check_workspace(request, workspace)
    return RunContext(request.app.state.platform, actor, workspace, run_options(request))


RunContextDep = Annotated[RunContext, Depends(run_context)]


@dataclass(frozen=True)
class Runnable:
    """A job to queue, with the code and schema its worker needs."""

    job: NewJob
    code: str
    schema: dict[str, Any] | None
    #: Set when the script came from this process's cache: the insert checks it is live.
    live_hash: int | None = None
    #: The version's lock, and why it could not be locked (the job then fails at once).
    lock: str | None = None
    lock_error_logs: str | None = None

    @classmethod
    def of_script(cls, job: NewJob, row: dict[str, Any], *, cached: bool = False) -> Runnable:
        return cls(
            job,
            row["content"],
            row["schema"],
            row["hash"] if cached else None,
            row["lock"],
            row["lock_error_logs"],
        )


class ScriptCache:
    """The live version of recently run paths, sparing a query per run.

    Never trusted blindly: a job built from a cached version is inserted only if that
    version is still the live one (checked by the insert itself), else the path is read
    again. Another process saving a new version is thus seen at the next run.
    """

    def __init__(self, size: int = 1000) -> None:
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        self._size = size

    def get(self, workspace: str, path: str) -> dict[str, Any] | None:
        return self._rows.get((workspace, path))

    def put(self, workspace: str, path: str, row: dict[str, Any]) -> None:
        if len(self._rows) >= self._size:
            self._rows.clear()
        self._rows[(workspace, path)] = row

    def drop(self, workspace: str, path: str) -> None:
        self._rows.pop((workspace, path), None)


async def _live_script(ctx: RunContext, path: str, cache: ScriptCache) -> dict[str, Any]:
    platform = ctx.platform
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["get_live_script_by_path"], {"workspace_id": ctx.workspace, "path": path}
        )
        row = await cur.fetchone()
    if row is None:
        raise not_found(f"Script not found at name {path}")
    cache.put(ctx.workspace, path, row)
    return row


def _script_job(ctx: RunContext, row: dict[str, Any], args: dict[str, Any]) -> NewJob:
    """A job running a saved script version, its arguments checked against its schema."""
    args = _check_args(row["schema"], args)
    options = ctx.options
    return NewJob(
        id=options.job_id or uuid4(),
        workspace_id=ctx.workspace,
        kind="script",
        tag=options.tag or row["tag"] or row["language"],
        args=args,
        created_by=ctx.actor.username,
        permissioned_as=ctx.actor.permissioned_as,
        email=ctx.actor.email,
        language=row["language"],
        runnable_path=row["path"],
        runnable_hash=row["hash"],
        priority=row["priority"],
        timeout=options.timeout or row["timeout"],
        parent_job=options.parent_job,
        scheduled_for=options.when(),
    )


async def _queue_script_by_path(
    ctx: RunContext, request: Request, path: str, args: dict[str, Any]
) -> UUID:
    cache: ScriptCache = request.app.state.script_cache
    row = cache.get(ctx.workspace, path)
    if row is not None:
        try:
            job = _script_job(ctx, row, args)
            return await _push(ctx.platform, Runnable.of_script(job, row, cached=True))
        except StaleScriptError:
            cache.drop(ctx.workspace, path)
        except ApiError:
            cache.drop(ctx.workspace, path)  # judged on an old schema: judge on the live one
    row = await _live_script(ctx, path, cache)
    job = _script_job(ctx, row, args)
    return await _push(ctx.platform, Runnable.of_script(job, row))


async def _queue_script_by_hash(ctx: RunContext, hash: str, args: dict[str, Any]) -> UUID:
    row = await get_script_row_by_hash(ctx.platform, ctx.workspace, hash)
    job = _script_job(ctx, row, args)
    return await _push(ctx.platform, Runnable.of_script(job, row))


def _preview_job(ctx: RunContext, body: Preview) -> Runnable:
    """A job running code sent with the request."""
    registry = ctx.platform.require_registry()
    try:
        language = registry.resolve(body.language)
    except UnknownRuntimeError as exc:
        raise bad_request(str(exc)) from None
    if body.path is not None:
        check_path(body.path)
    try:
        signature = registry.get(language).parse_signature(body.content)
    except ScriptError as exc:
        raise bad_request(script_error_message(exc)) from None
    schema = signature_to_schema(signature)
    args = _check_args(schema, body.args)
    options = ctx.options
    job = NewJob(
        id=options.job_id or uuid4(),
        workspace_id=ctx.workspace,
        kind="preview",
        tag=options.tag or body.tag or language,
        args=args,
        created_by=ctx.actor.username,
        permissioned_as=ctx.actor.permissioned_as,
        email=ctx.actor.email,
        language=language,
        runnable_path=body.path,
        raw_code=body.content,
        raw_schema=schema,
        raw_lock=body.lock,
        timeout=options.timeout,
        parent_job=options.parent_job,
        scheduled_for=options.when(),
    )
    return Runnable(job, body.content, schema)


async def _push(platform: Platform, runnable: Runnable) -> UUID:
    """Queue the job; a job id that exists already is refused."""
    try:
        return await _insert(platform, runnable)
    except psycopg.errors.UniqueViolation:
        raise bad_request(f"a job with id {runnable.job.id} already exists") from None


async def _insert(platform: Platform, runnable: Runnable) -> UUID:
    """Insert the job; in a standalone process, hand it to an idle worker of its own when
    there is one (no notification, no claim: the fast path of a single-machine install).
    A job no worker can run (its toolchain is missing everywhere) is recorded as failed."""
    assert platform.pool is not None
    job = runnable.job
    if runnable.lock_error_logs is not None:
        return await _record_unrunnable(
            platform, job, "LockError", lock_error_message(runnable.lock_error_logs)
        )
    refusal = await platform.capabilities.refusal(job.tag) if platform.capabilities else None
    if refusal is not None:
        return await _record_unrunnable(platform, job, "ToolchainMissing", refusal)
    reservation = None
    if platform.workers is not None and job.scheduled_for is None:
        reservation = platform.workers.reserve(job.tag)
    if reservation is None:
        async with platform.pool.connection() as conn:
            return await push_job(conn, job, live_hash=runnable.live_hash)
    try:
        async with platform.pool.connection() as conn:
            claimed = await push_claimed_job(
                conn,
                job,
                worker=reservation.worker,
                code=runnable.code,
                schema=runnable.schema,
                lock=runnable.lock,
                lock_error_logs=runnable.lock_error_logs,
                live_hash=runnable.live_hash,
            )
    except BaseException:
        reservation.release()
        raise
    reservation.hand(claimed)
    return job.id


async def _record_unrunnable(platform: Platform, job: NewJob, name: str, reason: str) -> UUID:
    assert platform.pool is not None and platform.notifier is not None
    result = error_result(name, reason)
    async with platform.pool.connection() as conn:
        await push_failed_job(conn, job, result)
    platform.notifier.deliver_done(str(job.id), JobDone("failure", result))
    return job.id


# -- asynchronous runs: 201 and the job id ---------------------------------------------------


@router.post(
    "/run/p/{path:path}",
    status_code=201,
    response_class=PlainTextResponse,
    openapi_extra=_ARGS_BODY,
)
async def run_script_by_path(path: str, request: Request, ctx: RunContextDep) -> str:
    """Queue a run of the live version at ``path``; returns the job id."""
    args = parse_args_body(await request.body())
    return str(await _queue_script_by_path(ctx, request, path, args))


@router.post(
    "/run/h/{hash}", status_code=201, response_class=PlainTextResponse, openapi_extra=_ARGS_BODY
)
async def run_script_by_hash(hash: str, request: Request, ctx: RunContextDep) -> str:
    """Queue a run of one exact script version; returns the job id."""
    args = parse_args_body(await request.body())
    return str(await _queue_script_by_hash(ctx, hash, args))


@router.post(
    "/run/preview", status_code=201, response_class=PlainTextResponse, openapi_extra=_RUN_EXTRA
)
async def run_preview(body: Preview, ctx: RunContextDep) -> str:
    """Queue a run of code sent in the request (not saved as a script); returns the job id."""
    runnable = _preview_job(ctx, body)
    return str(await _push(ctx.platform, runnable))


# -- synchronous runs: the result ------------------------------------------------------------


async def _check_queue_limit(platform: Platform, workspace: str) -> None:
    limit = platform.settings.queue_limit_wait_result
    if limit is None:
        return
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        row = await (await conn.execute(Q["count_queued"], {"workspace_id": workspace})).fetchone()
    count = row[0] if row else 0
    if count > limit:
        raise ApiError(
            503,
            f"Number of queued job is too high: {count} > {limit} (QUEUE_LIMIT_WAIT_RESULT); "
            "retry later",
            headers={"Retry-After": "1"},
        )


async def wait_for_completion(
    platform: Platform,
    workspace: str,
    job_id: UUID,
    timeout_s: float,
    *,
    future: asyncio.Future[JobDone | None] | None = None,
) -> JobDone:
    """Wait until the job completes; return its status and result JSON text.

    Woken by the process's notification connection (registered before the job was queued
    when ``future`` is given), which usually carries the result itself. Every few seconds,
    and whenever notifications may have been missed, the database is asked directly.
    """
    assert platform.notifier is not None and platform.pool is not None
    key = str(job_id)
    deadline = time.monotonic() + timeout_s
    while True:
        if future is None:
            future = platform.notifier.expect_done(key)
            check_now = True
        else:
            check_now = False
        try:
            if not check_now:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    # Awaited directly (no wait_for: no extra task or shield between the
                    # notification and this handler); the timer resolves it with None.
                    timer = asyncio.get_running_loop().call_later(
                        min(remaining, 5.0), _resolve_none, future
                    )
                    try:
                        done = await future
                    finally:
                        timer.cancel()
                    if done is not None and done.status in _STATUSES:
                        return done
            async with platform.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        Q["get_completed"], {"id": job_id, "workspace_id": workspace}
                    )
                ).fetchone()
        finally:
            platform.notifier.forget(key, future)
            future = None
        if row is not None:
            return JobDone(row[0], row[1] if row[1] is not None else "null")
        if time.monotonic() >= deadline:
            raise ApiError(
                500,
                f"timeout after {timeout_s:g}s: job {job_id} is still queued or running and "
                "keeps going; fetch its result later from "
                f"/api/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}",
            )
        future = platform.notifier.expect_done(key)


_STATUSES = frozenset(("success", "failure", "canceled", "skipped"))


def _resolve_none(future: asyncio.Future[JobDone | None]) -> None:
    if not future.done():
        future.set_result(None)


async def _run_and_wait(ctx: RunContext, queue: Callable[[], Awaitable[UUID]]) -> Response:
    """Queue a job with ``queue`` (it must use the id in ``ctx.options.job_id``) and answer
    with its result: 200, or 422 with the error object when the job fails."""
    platform = ctx.platform
    await _check_queue_limit(platform, ctx.workspace)
    assert platform.notifier is not None and ctx.options.job_id is not None
    job_id = ctx.options.job_id
    # Listen for the completion before queueing, so that even an instant result is seen.
    future = platform.notifier.expect_done(str(job_id))
    try:
        await queue()
    except BaseException:
        platform.notifier.forget(str(job_id), future)
        raise
    done = await wait_for_completion(
        platform, ctx.workspace, job_id, platform.settings.timeout_wait_result_s, future=future
    )
    return Response(
        content=done.result,
        media_type="application/json",
        status_code=200 if done.status == "success" else 422,
        headers={"x-job-id": str(job_id)},
    )


def _with_job_id(ctx: RunContext) -> RunContext:
    if ctx.options.job_id is not None:
        return ctx
    options = ctx.options.model_copy(update={"job_id": uuid4()})
    return RunContext(ctx.platform, ctx.actor, ctx.workspace, options)


@router.post("/run_wait_result/p/{path:path}", openapi_extra=_ARGS_BODY)
async def run_wait_result_by_path(path: str, request: Request, ctx: RunContextDep) -> Response:
    """Run the live version at ``path`` and answer with its result (422 with the error when
    the job fails)."""
    args = parse_args_body(await request.body())
    ctx = _with_job_id(ctx)
    return await _run_and_wait(ctx, lambda: _queue_script_by_path(ctx, request, path, args))


@router.get("/run_wait_result/p/{path:path}", openapi_extra=_RUN_EXTRA)
async def run_wait_result_by_path_get(
    path: str, request: Request, ctx: RunContextDep, payload: str | None = None
) -> Response:
    """As the POST form, the arguments given as ``?payload=<url-safe base64 of JSON>``."""
    raw = b""
    if payload:
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except ValueError:
            raise bad_request("payload is not url-safe base64") from None
    args = parse_args_body(raw)
    ctx = _with_job_id(ctx)
    return await _run_and_wait(ctx, lambda: _queue_script_by_path(ctx, request, path, args))


@router.post("/run_wait_result/h/{hash}", openapi_extra=_ARGS_BODY)
async def run_wait_result_by_hash(hash: str, request: Request, ctx: RunContextDep) -> Response:
    """Run one exact version and answer with its result."""
    args = parse_args_body(await request.body())
    ctx = _with_job_id(ctx)
    return await _run_and_wait(ctx, lambda: _queue_script_by_hash(ctx, hash, args))


@router.post("/run_wait_result/preview", openapi_extra=_RUN_EXTRA)
async def run_wait_result_preview(body: Preview, ctx: RunContextDep) -> Response:
    """Run code sent in the request and answer with its result."""
    ctx = _with_job_id(ctx)
    runnable = _preview_job(ctx, body)
    return await _run_and_wait(ctx, lambda: _push(ctx.platform, runnable))


# -- listing -------------------------------------------------------------------------------------


def job_to_json(
    row: dict[str, Any], *, logs: str | None = None, full: bool = True
) -> dict[str, Any]:
    """A job as Windmill's clients read it: ``type`` is ``QueuedJob`` or ``CompletedJob``."""
    out: dict[str, Any] = {
        "id": str(row["id"]),
        "workspace_id": row["workspace_id"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "started_at": row["started_at"],
        "job_kind": row["kind"],
        "permissioned_as": row["permissioned_as"],
        "email": row["email"],
        "tag": row["tag"],
        "priority": row["priority"],
        "language": row["language"],
        "script_path": row["runnable_path"],
        "script_hash": format_hash(row["runnable_hash"])
        if row["runnable_hash"] is not None
        else None,
        "parent_job": str(row["parent_job"]) if row["parent_job"] else None,
        "visible_to_owner": True,
        "is_flow_step": False,
        "same_worker": False,
        "flow_status": None,
        "schedule_path": None,
        "mem_peak": None,
    }
    if full:
        out["args"] = row["args"]
        out["raw_code"] = row["raw_code"]
        out["logs"] = logs
        out["root_job"] = str(row["root_job"]) if row["root_job"] else None
    if row["queued"]:
        canceled_by = row.get("queue_canceled_by", row.get("canceled_by"))
        out.update(
            type="QueuedJob",
            running=bool(row["running"]),
            scheduled_for=row["scheduled_for"],
            canceled=canceled_by is not None,
            canceled_by=canceled_by,
            canceled_reason=row.get("queue_canceled_reason", row.get("canceled_reason")),
        )
        if full:
            out.update(last_ping=row["ping"], worker=row["queue_worker"])
    else:
        status = row["status"]
        out.update(
            type="CompletedJob",
            success=status == "success",
            status=status,
            duration_ms=row["duration_ms"],
            canceled=status == "canceled",
            canceled_by=row["canceled_by"],
            canceled_reason=row["canceled_reason"],
            is_skipped=status == "skipped",
            deleted=False,
        )
        if full:
            out.update(
                result=row["result"],
                completed_at=row["completed_at"],
                worker=row["completed_worker"],
            )
    return out


async def _list(
    platform: Platform, workspace: str, *, queued_only: bool, completed_only: bool, **filters: Any
) -> list[dict[str, Any]]:
    page, per_page = filters.pop("page"), filters.pop("per_page")
    kinds = filters.pop("job_kinds")
    params = {
        "workspace_id": workspace,
        "queued_only": queued_only,
        "completed_only": completed_only,
        "job_kinds": [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None,
        "limit": per_page,
        "offset": (page - 1) * per_page,
        **filters,
    }
    if params["script_hash"] is not None:
        try:
            params["script_hash"] = parse_hash(params["script_hash"])
        except ValueError as exc:
            raise bad_request(str(exc)) from None
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["list_jobs"], params)
        rows = await cur.fetchall()
    return [job_to_json(row, full=False) for row in rows]


class JobFilters(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int = 1
    per_page: int = 100
    script_path_exact: str | None = None
    script_path_start: str | None = None
    script_hash: str | None = None
    created_by: str | None = None
    created_before: dt.datetime | None = None
    created_after: dt.datetime | None = None
    running: bool | None = None
    success: bool | None = None
    job_kinds: str | None = None
    tag: str | None = None
    parent_job: UUID | None = None

    def params(self) -> dict[str, Any]:
        if self.page < 1 or not 1 <= self.per_page <= 1000:
            raise bad_request("page must be at least 1 and per_page between 1 and 1000")
        if self.running and self.success is not None:
            raise bad_request(
                "running=true cannot be combined with success (running jobs have no outcome)"
            )
        return {
            "page": self.page,
            "per_page": self.per_page,
            "path_exact": self.script_path_exact,
            "path_start": self.script_path_start,
            "script_hash": self.script_hash,
            "created_by": self.created_by,
            "created_before": self.created_before,
            "created_after": self.created_after,
            "running": self.running,
            "success": self.success,
            "job_kinds": self.job_kinds,
            "tag": self.tag,
            "parent_job": self.parent_job,
        }


JobFiltersDep = Annotated[JobFilters, Query()]


@router.get("/list")
async def list_jobs(
    workspace: WorkspaceDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[dict[str, Any]]:
    """Queued and running jobs, then finished ones, newest first."""
    return await _list(
        platform, workspace, queued_only=False, completed_only=False, **filters.params()
    )


@router.get("/queue/list")
async def list_queued_jobs(
    workspace: WorkspaceDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[dict[str, Any]]:
    """Queued and running jobs only."""
    return await _list(
        platform, workspace, queued_only=True, completed_only=False, **filters.params()
    )


@router.get("/completed/list")
async def list_completed_jobs(
    workspace: WorkspaceDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[dict[str, Any]]:
    """Finished jobs only."""
    return await _list(
        platform, workspace, queued_only=False, completed_only=True, **filters.params()
    )


# -- one job -------------------------------------------------------------------------------------


async def _job_row(platform: Platform, workspace: str, job_id: UUID) -> dict[str, Any]:
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        row = await get_job(conn, workspace_id=workspace, job_id=job_id)
    if row is None:
        raise not_found(f"Job not found at name {job_id}")
    return row


@unauthed_router.get("/get/{id}")
async def get_job_by_id(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep, no_logs: bool = False
) -> dict[str, Any]:
    """A job, queued, running or finished, with its logs."""
    row = await _job_row(platform, workspace, id)
    logs = None
    if not no_logs:
        assert platform.pool is not None
        async with platform.pool.connection() as conn:
            logs = await get_logs(conn, id)
    return job_to_json(row, logs=logs)


@unauthed_router.get("/completed/get/{id}")
async def get_completed_job(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep
) -> dict[str, Any]:
    """A finished job."""
    row = await _job_row(platform, workspace, id)
    if row["queued"]:
        raise not_found(f"job {id} has not completed yet")
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        logs = await get_logs(conn, id)
    return job_to_json(row, logs=logs)


@unauthed_router.get("/getupdate/{id}")
async def get_job_update(
    id: UUID,
    workspace: WorkspaceDep,
    platform: PlatformDep,
    running: bool | None = None,
    log_offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    """What changed since ``log_offset``: new log text, and whether the job runs or is done."""
    row = await _job_row(platform, workspace, id)
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        new_logs, end = await logs_since(conn, id, log_offset)
    return {
        "running": bool(row["running"]) if row["queued"] else False,
        "completed": not row["queued"],
        "new_logs": new_logs,
        "log_offset": end,
        "mem_peak": None,
        "flow_status": None,
    }


@unauthed_router.get("/get_logs/{id}", response_class=PlainTextResponse)
async def get_job_logs(id: UUID, workspace: WorkspaceDep, platform: PlatformDep) -> str:
    """The whole log of a job so far, as text."""
    await _job_row(platform, workspace, id)
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        return await get_logs(conn, id)


@unauthed_router.get("/completed/get_result/{id}")
async def get_completed_result(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep
) -> Response:
    """The result of a finished job (the error object when it failed)."""
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        row = await (
            await conn.execute(Q["get_completed"], {"id": id, "workspace_id": workspace})
        ).fetchone()
    if row is None:
        await _job_row(platform, workspace, id)
        raise not_found(f"job {id} has not completed yet")
    return Response(content=row[1] or "null", media_type="application/json")


@unauthed_router.get("/completed/get_result_maybe/{id}")
async def get_result_maybe(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep, get_started: bool = False
) -> Response:
    """``{completed, started, success, result}``: the result when there is one, else state."""
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        state = await (
            await conn.execute(Q["get_job_state"], {"id": id, "workspace_id": workspace})
        ).fetchone()
    if state is None or not state[0]:
        raise not_found(f"Job not found at name {id}")
    _, running, status, result = state
    if status is None:
        body = {
            "completed": False,
            "started": bool(running) if get_started else None,
            "success": None,
            "result": None,
        }
        return Response(orjson.dumps(body), media_type="application/json")
    # The result is spliced in as stored: never parsed and serialized again.
    head = orjson.dumps({"completed": True, "started": True, "success": status == "success"})
    return Response(
        head[:-1] + b',"result":' + (result or "null").encode() + b"}",
        media_type="application/json",
    )


class CancelBody(BaseModel):
    reason: str | None = None


async def _cancel(
    platform: Platform, workspace: str, actor: Actor, id: UUID, body: CancelBody | None
) -> str:
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        outcome = await cancel_job(
            conn,
            workspace_id=workspace,
            job_id=id,
            canceled_by=actor.username,
            reason=body.reason if body else None,
        )
    if outcome.state == "completed":
        raise bad_request(f"queued job id {id} is already completed")
    if outcome.state == "not_found":
        raise not_found(f"queued job id {id} does not exist")
    return str(id)


@unauthed_router.post("/queue/cancel/{id}", response_class=PlainTextResponse)
async def cancel_queued_job(
    id: UUID,
    workspace: WorkspaceDep,
    platform: PlatformDep,
    actor: ActorDep,
    body: Annotated[CancelBody | None, Body()] = None,
) -> str:
    """Cancel a job: a queued one at once, a running one by killing its process."""
    return await _cancel(platform, workspace, actor, id, body)


@router.post("/queue/cancel/{id}", response_class=PlainTextResponse)
async def cancel_job_endpoint(
    id: UUID,
    workspace: WorkspaceDep,
    platform: PlatformDep,
    actor: ActorDep,
    body: Annotated[CancelBody | None, Body()] = None,
) -> str:
    """Same as ``jobs_u/queue/cancel``."""
    return await _cancel(platform, workspace, actor, id, body)
