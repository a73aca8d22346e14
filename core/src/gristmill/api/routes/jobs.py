"""Jobs: running scripts (by path, by hash, or as a preview), waiting for results, reading
state and logs, cancelling."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError

from gristmill.api.deps import (
    AccessDep,
    ActorDep,
    AuthenticatedRoute,
    PlatformDep,
    WorkspaceDep,
)
from gristmill.api.schemas.jobs import (
    CancelBody,
    CompletedJob,
    Job,
    JobFilters,
    JobUpdate,
    PreviewBody,
    QueuedJob,
    ResultMaybe,
    RunOptionsQuery,
)
from gristmill.auth.actor import Actor
from gristmill.auth.permissions import Access
from gristmill.errors import BadInput, NotFound
from gristmill.queue import cancel, rows
from gristmill.queue.states import JobStatus
from gristmill.queue.submit import Preview, RunOptions
from gristmill.scripts.hashes import format_hash, parse_hash
from gristmill.server.platform import Platform
from gristmill.validation import INT4_MAX

__all__ = ["router", "unauthed_router"]

# Every endpoint authenticates first (AuthenticatedRoute: before the body is parsed), then
# through WorkspaceDep or RunContextDep, which reuse that actor (one dependency for the hot
# run endpoints: FastAPI's dependency resolution is a measurable part of a job).
router = APIRouter(prefix="/w/{workspace}/jobs", tags=["jobs"], route_class=AuthenticatedRoute)
# Windmill's `jobs_u` paths; Gristmill still requires a token on them.
unauthed_router = APIRouter(
    prefix="/w/{workspace}/jobs_u", tags=["jobs"], route_class=AuthenticatedRoute
)

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
        "schema": {"type": "integer", "minimum": 0, "maximum": INT4_MAX},
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
        "schema": {"type": "integer", "minimum": 1, "maximum": INT4_MAX},
        "description": "Seconds the job may run (capped by the instance's TIMEOUT).",
    },
]
_RUN_EXTRA: dict[str, Any] = {"parameters": _RUN_PARAMETERS}
_ARGS_BODY: dict[str, Any] = {
    "parameters": _RUN_PARAMETERS,
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"name": "world"},
            }
        },
        "description": 'The script\'s arguments (a non-object body becomes `{"body": ...}`).',
    },
}
#: The answer of a synchronous run: the script's result, any JSON (an error object with 422).
_RESULT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The script's result (any JSON).",
        "content": {"application/json": {"schema": {}}},
    },
    422: {
        "description": "The job failed: its error object `{error: {name, message, stack}}`.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    500: {
        "description": "`timeout after ...`: the job outlived TIMEOUT_WAIT_RESULT; it keeps "
        "going, and the message says where to fetch its result (Windmill's answer).",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}

_NO_OPTIONS = RunOptionsQuery()


def run_options(request: Request) -> RunOptionsQuery:
    """The run options of the query string; the common case (none) costs no validation."""
    params = request.query_params
    if not any(name in params for name in RunOptionsQuery.model_fields):
        return _NO_OPTIONS
    try:
        return RunOptionsQuery.model_validate(dict(params))
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadInput(details) from None


def parse_args_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"the request body is not valid JSON ({exc})") from None
    return value if isinstance(value, dict) else {"body": value}


@dataclass(frozen=True)
class RunContext:
    """Who runs what where: everything a run endpoint needs, resolved as one dependency."""

    platform: Platform
    actor: Actor
    workspace: str
    query: RunOptionsQuery
    access: Access

    def options(self, job_id: UUID | None = None) -> RunOptions:
        q = self.query
        return RunOptions(
            scheduled_for=q.when(),
            tag=q.tag,
            job_id=job_id or q.job_id,
            parent_job=q.parent_job,
            timeout=q.timeout,
        )


async def run_context(request: Request, access: AccessDep) -> RunContext:
    return RunContext(
        request.app.state.platform, access.actor, access.workspace_id, run_options(request), access
    )


RunContextDep = Annotated[RunContext, Depends(run_context)]


def _preview(body: PreviewBody) -> Preview:
    return Preview(body.content, body.language, body.args, body.path, body.tag, body.lock)


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
    job_id = await ctx.platform.runs.run_script_by_path(
        ctx.workspace, ctx.actor, path, args, ctx.options()
    )
    return str(job_id)


@router.post(
    "/run/h/{hash}", status_code=201, response_class=PlainTextResponse, openapi_extra=_ARGS_BODY
)
async def run_script_by_hash(hash: str, request: Request, ctx: RunContextDep) -> str:
    """Queue a run of one exact script version; returns the job id."""
    args = parse_args_body(await request.body())
    job_id = await ctx.platform.runs.run_script_by_hash(
        ctx.workspace, ctx.actor, hash, args, ctx.options()
    )
    return str(job_id)


@router.post(
    "/run/preview", status_code=201, response_class=PlainTextResponse, openapi_extra=_RUN_EXTRA
)
async def run_preview(body: PreviewBody, ctx: RunContextDep) -> str:
    """Queue a run of code sent in the request (not saved as a script); returns the job id."""
    job_id = await ctx.platform.runs.run_preview(
        ctx.workspace, ctx.actor, _preview(body), ctx.options()
    )
    return str(job_id)


# -- synchronous runs: the result ------------------------------------------------------------


async def _run_and_wait(
    ctx: RunContext, start: Callable[[RunOptions], Awaitable[UUID]]
) -> Response:
    """Queue a job with ``start`` and answer with its result: 200, or 422 with the error
    object when the job fails."""
    platform = ctx.platform
    job_id = ctx.query.job_id or uuid4()
    options = ctx.options(job_id)
    done = await platform.runs.run_and_wait(
        ctx.workspace,
        job_id,
        lambda: start(options),
        timeout_s=platform.settings.timeout_wait_result_s,
        queue_limit=platform.settings.queue_limit_wait_result,
        scheduled_for=options.scheduled_for,
    )
    return Response(
        content=done.result,
        media_type="application/json",
        status_code=200 if done.status == JobStatus.SUCCESS else 422,
        headers={"x-job-id": str(job_id)},
    )


@router.post("/run_wait_result/p/{path:path}", openapi_extra=_ARGS_BODY, responses=_RESULT_RESPONSE)
async def run_wait_result_by_path(path: str, request: Request, ctx: RunContextDep) -> Response:
    """Run the live version at ``path`` and answer with its result (422 with the error when
    the job fails)."""
    args = parse_args_body(await request.body())
    runs = ctx.platform.runs
    return await _run_and_wait(
        ctx, lambda options: runs.run_script_by_path(ctx.workspace, ctx.actor, path, args, options)
    )


@router.get("/run_wait_result/p/{path:path}", openapi_extra=_RUN_EXTRA, responses=_RESULT_RESPONSE)
async def run_wait_result_by_path_get(
    path: str, ctx: RunContextDep, payload: str | None = None
) -> Response:
    """As the POST form, the arguments given as ``?payload=<url-safe base64 of JSON>``."""
    raw = b""
    if payload:
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except ValueError:
            raise BadInput("payload is not url-safe base64") from None
    args = parse_args_body(raw)
    runs = ctx.platform.runs
    return await _run_and_wait(
        ctx, lambda options: runs.run_script_by_path(ctx.workspace, ctx.actor, path, args, options)
    )


@router.post("/run_wait_result/h/{hash}", openapi_extra=_ARGS_BODY, responses=_RESULT_RESPONSE)
async def run_wait_result_by_hash(hash: str, request: Request, ctx: RunContextDep) -> Response:
    """Run one exact version and answer with its result."""
    args = parse_args_body(await request.body())
    runs = ctx.platform.runs
    return await _run_and_wait(
        ctx, lambda options: runs.run_script_by_hash(ctx.workspace, ctx.actor, hash, args, options)
    )


@router.post("/run_wait_result/preview", openapi_extra=_RUN_EXTRA, responses=_RESULT_RESPONSE)
async def run_wait_result_preview(body: PreviewBody, ctx: RunContextDep) -> Response:
    """Run code sent in the request and answer with its result."""
    runs = ctx.platform.runs
    preview = _preview(body)
    return await _run_and_wait(
        ctx, lambda options: runs.run_preview(ctx.workspace, ctx.actor, preview, options)
    )


# -- a job as Windmill's clients read it -----------------------------------------------------


def _job(row: dict[str, Any], *, logs: str | None = None, full: bool = True) -> Job:
    """``type`` is ``QueuedJob`` or ``CompletedJob``; lists leave out the heavy fields."""
    common: dict[str, Any] = {
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
        # Always present (lists leave out only the unset heavy fields).
        "visible_to_owner": True,
        "is_flow_step": False,
        "same_worker": False,
        "flow_status": None,
        "schedule_path": None,
        "mem_peak": None,
    }
    if full:
        common.update(
            args=row["args"],
            raw_code=row["raw_code"],
            logs=logs,
            root_job=str(row["root_job"]) if row["root_job"] else None,
        )
    if row["queued"]:
        canceled_by = row.get("queue_canceled_by", row.get("canceled_by"))
        extra: dict[str, Any] = {}
        if full:
            extra = {"last_ping": row["ping"], "worker": row["queue_worker"]}
        return QueuedJob(
            type="QueuedJob",
            **common,
            **extra,
            running=bool(row["running"]),
            scheduled_for=row["scheduled_for"],
            canceled=canceled_by is not None,
            canceled_by=canceled_by,
            canceled_reason=row.get("queue_canceled_reason", row.get("canceled_reason")),
        )
    status = JobStatus(row["status"])
    extra = {}
    if full:
        extra = {
            "result": row["result"],
            "completed_at": row["completed_at"],
            "worker": row["completed_worker"],
        }
    return CompletedJob(
        type="CompletedJob",
        deleted=False,
        **common,
        **extra,
        success=status == JobStatus.SUCCESS,
        status=status,
        duration_ms=row["duration_ms"],
        canceled=status == JobStatus.CANCELED,
        canceled_by=row["canceled_by"],
        canceled_reason=row["canceled_reason"],
        is_skipped=status == JobStatus.SKIPPED,
    )


# -- listing -------------------------------------------------------------------------------------


def _query(filters: JobFilters, *, queued_only: bool, completed_only: bool) -> rows.JobQuery:
    if filters.running and filters.success is not None:
        raise BadInput(
            "running=true cannot be combined with success (running jobs have no outcome)"
        )
    kinds = filters.job_kinds
    return rows.JobQuery(
        page=filters.page,
        per_page=filters.per_page,
        queued_only=queued_only,
        completed_only=completed_only,
        path_exact=filters.script_path_exact,
        path_start=filters.script_path_start,
        script_hash=parse_hash(filters.script_hash) if filters.script_hash else None,
        created_by=filters.created_by,
        created_before=filters.created_before,
        created_after=filters.created_after,
        running=filters.running,
        success=filters.success,
        job_kinds=[k.strip() for k in kinds.split(",") if k.strip()] if kinds else None,
        tag=filters.tag,
        parent_job=filters.parent_job,
    )


JobFiltersDep = Annotated[JobFilters, Query()]


async def _list(platform: Platform, workspace: str, query: rows.JobQuery) -> list[Job]:
    return [_job(row, full=False) for row in await rows.list_jobs(platform.db, workspace, query)]


@router.get("/list", response_model_exclude_unset=True)
async def list_jobs(
    workspace: WorkspaceDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[Job]:
    """Queued and running jobs, then finished ones, newest first."""
    query = _query(filters, queued_only=False, completed_only=False)
    return await _list(platform, workspace, query)


@router.get("/queue/list", response_model_exclude_unset=True)
async def list_queued_jobs(
    workspace: WorkspaceDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[Job]:
    """Queued and running jobs only."""
    query = _query(filters, queued_only=True, completed_only=False)
    return await _list(platform, workspace, query)


@router.get("/completed/list", response_model_exclude_unset=True)
async def list_completed_jobs(
    workspace: WorkspaceDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[Job]:
    """Finished jobs only."""
    query = _query(filters, queued_only=False, completed_only=True)
    return await _list(platform, workspace, query)


# -- one job -------------------------------------------------------------------------------------


@unauthed_router.get("/get/{id}")
async def get_job_by_id(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep, no_logs: bool = False
) -> Job:
    """A job, queued, running or finished, with its logs."""
    row = await rows.fetch_job(platform.db, workspace, id)
    logs = None if no_logs else await rows.get_logs(platform.db, id)
    return _job(row, logs=logs)


@unauthed_router.get("/completed/get/{id}")
async def get_completed_job(id: UUID, workspace: WorkspaceDep, platform: PlatformDep) -> Job:
    """A finished job."""
    row = await rows.fetch_job(platform.db, workspace, id)
    if row["queued"]:
        raise _not_completed(id)
    return _job(row, logs=await rows.get_logs(platform.db, id))


def _not_completed(id: UUID) -> NotFound:
    return NotFound(f"job {id} has not completed yet")


@unauthed_router.get("/getupdate/{id}")
async def get_job_update(
    id: UUID,
    workspace: WorkspaceDep,
    platform: PlatformDep,
    running: bool | None = None,
    log_offset: int = Query(0, ge=0, le=INT4_MAX),
) -> JobUpdate:
    """What changed since ``log_offset``: new log text, and whether the job runs or is done."""
    row = await rows.fetch_job(platform.db, workspace, id)
    new_logs, end = await rows.logs_since(platform.db, id, log_offset)
    return JobUpdate(
        running=bool(row["running"]) if row["queued"] else False,
        completed=not row["queued"],
        new_logs=new_logs,
        log_offset=end,
    )


@unauthed_router.get("/get_logs/{id}", response_class=PlainTextResponse)
async def get_job_logs(id: UUID, workspace: WorkspaceDep, platform: PlatformDep) -> str:
    """The whole log of a job so far, as text."""
    await rows.fetch_job(platform.db, workspace, id)
    return await rows.get_logs(platform.db, id)


@unauthed_router.get(
    "/completed/get_result/{id}",
    responses={
        200: {
            "description": "The result (any JSON), or the error object of a failed job.",
            "content": {"application/json": {"schema": {}}},
        }
    },
)
async def get_completed_result(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep
) -> Response:
    """The result of a finished job (the error object when it failed)."""
    stored = await rows.completed_result(platform.db, workspace, id)
    if stored is None:
        await rows.fetch_job(platform.db, workspace, id)
        raise _not_completed(id)
    return Response(content=stored.result, media_type="application/json")


@unauthed_router.get("/completed/get_result_maybe/{id}", response_model=ResultMaybe)
async def get_result_maybe(
    id: UUID, workspace: WorkspaceDep, platform: PlatformDep, get_started: bool = False
) -> Response:
    """``{completed, started, success, result}``: the result when there is one, else state."""
    state = await rows.job_state(platform.db, workspace, id)
    if state.completed is None:
        body = {
            "completed": False,
            "started": state.running if get_started else None,
            "success": None,
            "result": None,
        }
        return Response(orjson.dumps(body), media_type="application/json")
    # The result is spliced in as stored: never parsed and serialized again.
    success = state.completed.status == JobStatus.SUCCESS
    head = orjson.dumps({"completed": True, "started": True, "success": success})
    return Response(
        head[:-1] + b',"result":' + state.completed.result.encode() + b"}",
        media_type="application/json",
    )


async def _cancel(
    platform: Platform, workspace: str, actor: Actor, id: UUID, body: CancelBody | None
) -> str:
    await cancel.cancel_job(
        platform.db,
        workspace_id=workspace,
        job_id=id,
        canceled_by=actor.username,
        reason=body.reason if body else None,
    )
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
