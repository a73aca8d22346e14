"""Jobs: running scripts (by path, by hash, or as a preview), waiting for results, reading
state and logs, cancelling."""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask

from gristmill.api.deps import (
    AccessDep,
    AuthenticatedRoute,
    PlatformDep,
    authenticate,
    bearer_token,
    check_workspace,
    current_access,
    scope_refusal,
    token_source,
)
from gristmill.api.schemas.jobs import (
    CancelBody,
    CompletedJob,
    DependenciesBody,
    FlowDependenciesBody,
    FlowPreviewBody,
    Job,
    JobFilters,
    JobUpdate,
    PreviewBody,
    QueuedJob,
    ResultMaybe,
    ResumeUrls,
    RunOptionsQuery,
)
from gristmill.api.schemas.suspend import Approval, ApprovalRecord, SuspendedJobFlow
from gristmill.auth.actor import Actor
from gristmill.auth.permissions import Access, scope_allows
from gristmill.errors import BadInput, NotFound
from gristmill.flows.engine import public_flow_status
from gristmill.flows.suspend import check_approver, required_events
from gristmill.flows.testing import pin_value
from gristmill.queue import cancel, resume, rows
from gristmill.queue.context import SCHEDULE_TRIGGER
from gristmill.queue.idempotency import check_key
from gristmill.queue.states import JobStatus
from gristmill.queue.submit import Preview, RunOptions
from gristmill.queue.trace import TRACE
from gristmill.scripts.hashes import format_hash, parse_hash
from gristmill.scripts.versions import fetch_by_hash
from gristmill.server.platform import Platform
from gristmill.triggers.webhooks import (
    WEBHOOK_TRIGGER,
    UnsupportedMediaType,
    body_options,
    result_answer,
    webhook_args,
)
from gristmill.validation import INT4_MAX, check_no_nul

__all__ = ["public_router", "router", "unauthed_router"]

#: When the running request's handler was entered (``perf_counter_ns``), while jobs are
#: traced (gristmill.queue.trace): the job's first mark, once its id is known.
_RECEIVED_NS: ContextVar[int | None] = ContextVar("gristmill_received_ns", default=None)


class _TracedRoute(AuthenticatedRoute):
    """:class:`AuthenticatedRoute` that notes when the handler was entered (before the
    authentication) while jobs are traced; untraced, one attribute test per request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def traced(request: Request) -> Response:
            if TRACE.enabled:
                _RECEIVED_NS.set(time.perf_counter_ns())
            return await handler(request)

        return traced


# Every endpoint authenticates first (AuthenticatedRoute: before the body is parsed), then
# through WorkspaceDep or RunContextDep, which reuse that actor (one dependency for the hot
# run endpoints: FastAPI's dependency resolution is a measurable part of a job).
router = APIRouter(prefix="/w/{workspace}/jobs", tags=["jobs"], route_class=_TracedRoute)
# Windmill's `jobs_u` paths; Gristmill still requires a token on them.
unauthed_router = APIRouter(
    prefix="/w/{workspace}/jobs_u", tags=["jobs"], route_class=AuthenticatedRoute
)
#: Approval links: the signature they carry is their authentication (no token).
public_router = APIRouter(prefix="/w/{workspace}/jobs_u", tags=["jobs"])

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
        "description": "Id for the new job, chosen by the caller. A repeat of the request "
        "with this id answers with that job (409 if it does not match it).",
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "A key naming this run in the workspace: a repeat of the request with "
        "it answers with the job it started (409 if it does not match it).",
    },
    {
        "name": "parent_job",
        "in": "query",
        "schema": {"type": "string", "format": "uuid"},
        "description": "The job starting this one (it must be visible to the caller).",
    },
    {"name": "root_job", "in": "query", "schema": {"type": "string", "format": "uuid"}},
    {
        "name": "timeout",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": INT4_MAX},
        "description": "Seconds the job may run (capped by the instance's TIMEOUT).",
    },
]
_RUN_EXTRA: dict[str, Any] = {"parameters": _RUN_PARAMETERS}
#: How the request becomes arguments (Windmill's webhook parameters; gristmill.triggers.webhooks).
_WEBHOOK_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "raw",
        "in": "query",
        "schema": {"type": "boolean"},
        "description": "Also pass the body, untouched, as the `raw_string` argument.",
    },
    {
        "name": "wrap_body",
        "in": "query",
        "schema": {"type": "boolean"},
        "description": 'Pass an object body as `{"body": ...}` too.',
    },
    {
        "name": "include_header",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Comma-separated request headers to pass as string arguments "
        "(`X-Signature` as `x_signature`).",
    },
    {
        "name": "include_query",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Comma-separated query parameters to pass as string arguments.",
    },
]
_ARGS_BODY: dict[str, Any] = {
    "parameters": [*_RUN_PARAMETERS, *_WEBHOOK_PARAMETERS],
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"name": "world"},
            },
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            },
            "text/plain": {"schema": {"type": "string"}},
        },
        "description": 'The script\'s arguments (a non-object body becomes `{"body": ...}`; '
        "a form's fields are strings; text is `raw_string`).",
    },
}
#: A repeated request (its job_id or Idempotency-Key taken) that does not match its job.
_REPEAT_RESPONSE: dict[int | str, dict[str, Any]] = {
    409: {
        "description": "`Conflict: ...`: the job_id or Idempotency-Key names a job this request "
        "does not match (another runnable, other arguments, another user); the message says "
        "what differs and names the job.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
#: The answer of a synchronous run: the script's result, any JSON (an error object with 422).
_RESULT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The script's result (any JSON). A result object with "
        "`windmill_status_code`, `windmill_content_type` or `windmill_headers` sets the "
        "status, content type and headers, and its `result` is the body.",
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
    **_REPEAT_RESPONSE,
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


async def request_args(request: Request, payload: bytes | None = None) -> dict[str, Any]:
    """The arguments of a run request: its body by content type, shaped by ``?raw=``,
    ``?wrap_body=``, ``?include_header=``, ``?include_query=`` (Windmill's webhook rules,
    :func:`gristmill.triggers.webhooks.webhook_args`). ``payload``: the JSON of a GET's
    ``?payload=``, in place of a body."""
    if payload is None:
        body, content_type = await request.body(), request.headers.get("content-type")
    else:
        body, content_type = payload, "application/json"
    query = request.query_params
    try:
        return webhook_args(body, content_type, request.headers, query, body_options(query))
    except UnsupportedMediaType as exc:
        raise HTTPException(415, str(exc)) from None


@dataclass(frozen=True)
class RunContext:
    """Who runs what where: everything a run endpoint needs, resolved as one dependency."""

    platform: Platform
    actor: Actor
    workspace: str
    query: RunOptionsQuery
    access: Access
    #: ``webhook`` when an API token (not the web UI's session cookie, not a job's token)
    #: asks for the run: what the job records as having started it.
    trigger_kind: str | None = None
    #: The request's ``Idempotency-Key`` header (docs/reliability.md).
    idempotency_key: str | None = None

    @property
    def named(self) -> bool:
        """The request names its job (a job id or a key): a repeat answers with that job."""
        return self.query.job_id is not None or self.idempotency_key is not None

    def options(self, job_id: UUID | None = None, *, saved: bool = False) -> RunOptions:
        """The run options; ``saved``: a run of a saved script, which records its trigger
        (previews do not)."""
        q = self.query
        return RunOptions(
            scheduled_for=q.when(),
            tag=q.tag,
            job_id=job_id or q.job_id,
            parent_job=q.parent_job,
            root_job=q.root_job,
            timeout=q.timeout,
            trigger_kind=self.trigger_kind if saved else None,
            idempotency_key=self.idempotency_key,
        )

    async def check_hash_scope(self, hash: str) -> None:
        """A token limited to some scripts runs a version by hash only if the version's path
        is one of them (the route could not tell before the version was read)."""
        scopes = self.actor.scopes
        if scopes is None:
            return
        row = await fetch_by_hash(self.platform.db, self.workspace, hash, self.access)
        if not scope_allows(scopes, "jobs", "run", row["path"], kind="scripts"):
            raise scope_refusal(self.actor, "jobs", "run", row["path"], "scripts")


async def run_context(request: Request, access: AccessDep) -> RunContext:
    platform: Platform = request.app.state.platform
    query = run_options(request)
    if query.parent_job is not None:
        # A child takes its flow context (and state path) from its parent: only a job the
        # caller may see can be named (404 otherwise, as for a missing one).
        await rows.fetch_job(platform.db, access.workspace_id, query.parent_job, access)
    actor = access.actor
    webhook = actor.job_id is None and token_source(request) in ("header", "query")
    trigger_kind = WEBHOOK_TRIGGER if webhook else None
    key = check_key(request.headers.get("idempotency-key"))
    return RunContext(platform, actor, access.workspace_id, query, access, trigger_kind, key)


RunContextDep = Annotated[RunContext, Depends(run_context)]


def _preview(body: PreviewBody) -> Preview:
    return Preview(body.content, body.language, body.args, body.path, body.tag, body.lock)


# -- asynchronous runs: 201 and the job id ---------------------------------------------------


@router.post(
    "/run/p/{path:path}",
    status_code=201,
    responses=_REPEAT_RESPONSE,
    response_class=PlainTextResponse,
    openapi_extra=_ARGS_BODY,
)
async def run_script_by_path(path: str, request: Request, ctx: RunContextDep) -> str:
    """Queue a run of the live version at ``path``; returns the job id."""
    args = await request_args(request)
    job_id = await ctx.platform.runs.run_script_by_path(
        ctx.workspace, ctx.actor, path, args, ctx.options(saved=True), access=ctx.access
    )
    return str(job_id)


@router.post(
    "/run/h/{hash}",
    status_code=201,
    responses=_REPEAT_RESPONSE,
    response_class=PlainTextResponse,
    openapi_extra=_ARGS_BODY,
)
async def run_script_by_hash(hash: str, request: Request, ctx: RunContextDep) -> str:
    """Queue a run of one exact script version; returns the job id."""
    await ctx.check_hash_scope(hash)
    args = await request_args(request)
    job_id = await ctx.platform.runs.run_script_by_hash(
        ctx.workspace, ctx.actor, hash, args, ctx.options(saved=True), access=ctx.access
    )
    return str(job_id)


@router.post(
    "/run/preview",
    status_code=201,
    responses=_REPEAT_RESPONSE,
    response_class=PlainTextResponse,
    openapi_extra=_RUN_EXTRA,
)
async def run_preview(body: PreviewBody, ctx: RunContextDep) -> str:
    """Queue a run of code sent in the request (not saved as a script); returns the job id."""
    job_id = await ctx.platform.runs.run_preview(
        ctx.workspace, ctx.actor, _preview(body), ctx.options(), access=ctx.access
    )
    return str(job_id)


@router.post(
    "/run/dependencies_async",
    status_code=201,
    response_class=PlainTextResponse,
)
async def run_dependencies_async(body: DependenciesBody, ctx: RunContextDep) -> str:
    """Queue a dependency job locking code that is not saved (what ``wmill
    generate-metadata`` asks); returns the job id. The job's result holds the ``lock``."""
    ctx.access.require_not_operator()  # before the body is judged: operators run no code
    try:
        script = body.script()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    job_id = await ctx.platform.runs.lock_dependencies(
        ctx.workspace,
        ctx.actor,
        script.raw_code,
        script.language,
        script.script_path,
        access=ctx.access,
    )
    return str(job_id)


@router.post(
    "/run/flow_dependencies_async",
    status_code=201,
    response_class=PlainTextResponse,
)
async def run_flow_dependencies_async(body: FlowDependenciesBody, ctx: RunContextDep) -> str:
    """Queue a dependency job locking the inline scripts of a flow value that is not saved
    (what ``wmill generate-metadata`` asks for a flow folder); returns the job id. The job's
    result holds ``updated_flow_value``: the value with each script's ``lock``."""
    ctx.access.require_not_operator()  # before the body is judged: operators run no code
    try:
        body.check()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    job_id = await ctx.platform.runs.lock_flow_dependencies(
        ctx.workspace, ctx.actor, body.flow_value, body.path, access=ctx.access
    )
    return str(job_id)


@router.post(
    "/run/f/{path:path}",
    status_code=201,
    responses=_REPEAT_RESPONSE,
    response_class=PlainTextResponse,
    openapi_extra=_ARGS_BODY,
)
async def run_flow_by_path(path: str, request: Request, ctx: RunContextDep) -> str:
    """Run the flow saved at ``path`` (its current version); returns the flow job's id."""
    args = await request_args(request)
    _refuse_flow_options(ctx)
    job_id = await ctx.platform.flows.run_flow(
        ctx.workspace,
        ctx.actor,
        path,
        args,
        job_id=ctx.query.job_id,
        access=ctx.access,
        trigger_kind=ctx.trigger_kind,
        idempotency_key=ctx.idempotency_key,
    )
    return str(job_id)


def _refuse_flow_options(ctx: RunContext) -> None:
    """A flow run takes ``job_id`` only: the other run options are refused rather than
    ignored (a caller asking for a schedule must not get an immediate run)."""
    options = ctx.options()
    given = [
        name
        for name, value in (
            ("scheduled_for / scheduled_in_secs", options.scheduled_for),
            ("tag", options.tag),
            ("timeout", options.timeout),
            ("parent_job", options.parent_job),
            ("root_job", options.root_job),
        )
        if value is not None
    ]
    if given:
        raise BadInput(
            f"flow runs do not take {', '.join(given)} yet; leave them out (job_id is taken)"
        )


_FLOW_EXTRA: dict[str, Any] = {
    "parameters": [p for p in _RUN_PARAMETERS if p["name"] in ("job_id", "Idempotency-Key")],
}


@router.post(
    "/run/preview_flow",
    status_code=201,
    responses=_REPEAT_RESPONSE,
    response_class=PlainTextResponse,
    openapi_extra=_FLOW_EXTRA,
)
async def run_flow_preview(body: FlowPreviewBody, ctx: RunContextDep) -> str:
    """Run a flow sent in the request (not saved); returns the flow job's id. Its status is
    the ``flow_status`` of ``jobs_u/get/{id}``."""
    return str(await _start_flow_preview(body, ctx, ctx.query.job_id))


async def _start_flow_preview(body: FlowPreviewBody, ctx: RunContext, job_id: UUID | None) -> UUID:
    return await ctx.platform.flows.run_preview(
        ctx.workspace,
        ctx.actor,
        pin_value(body.value, body.pinned),
        body.args,
        path=body.path,
        job_id=job_id,
        access=ctx.access,
        idempotency_key=ctx.idempotency_key,
    )


# -- synchronous runs: the result ------------------------------------------------------------


async def _run_and_wait(
    ctx: RunContext, start: Callable[[RunOptions], Awaitable[UUID]], *, saved: bool = False
) -> Response:
    """Queue a job with ``start`` and answer with its result: 200, or 422 with the error
    object when the job fails; a result object may set the status, content type and headers
    (:func:`gristmill.triggers.webhooks.result_answer`)."""
    platform = ctx.platform
    job_id = ctx.query.job_id or uuid4()
    if TRACE.enabled:
        TRACE.mark(job_id, "received", _RECEIVED_NS.get())
    options = ctx.options(job_id, saved=saved)
    if ctx.named:
        # Perhaps a retry: the answer is the job it names, whatever its id.
        job_id, done = await platform.runs.run_named_and_wait(
            ctx.workspace,
            lambda: start(options),
            timeout_s=platform.settings.timeout_wait_result_s,
            queue_limit=platform.settings.queue_limit_wait_result,
            scheduled_for=options.scheduled_for,
        )
    else:
        done = await platform.runs.run_and_wait(
            ctx.workspace,
            job_id,
            lambda: start(options),
            timeout_s=platform.settings.timeout_wait_result_s,
            queue_limit=platform.settings.queue_limit_wait_result,
            scheduled_for=options.scheduled_for,
        )
    answer = result_answer(done.result, done.status == JobStatus.SUCCESS)
    return Response(
        content=answer.body,
        media_type=answer.content_type,
        status_code=answer.status,
        headers={**answer.headers, "x-job-id": str(job_id)},
        # Run by Starlette once the response is sent.
        background=BackgroundTask(TRACE.mark, job_id, "responded") if TRACE.enabled else None,
    )


@router.get("/trace", include_in_schema=False)
async def take_job_traces(access: AccessDep) -> dict[str, list[tuple[str, int]]]:
    """Debug only (404 unless the process runs with ``GRISTMILL_TRACE_JOBS=1``): the phase
    marks of the jobs traced since the last call, by job id, for benchmarks/breakdown.py;
    admins only."""
    if not TRACE.enabled:
        raise NotFound("job tracing is off (GRISTMILL_TRACE_JOBS=1 turns it on)")
    access.require_admin()
    return TRACE.take()


@router.post("/run_wait_result/p/{path:path}", openapi_extra=_ARGS_BODY, responses=_RESULT_RESPONSE)
async def run_wait_result_by_path(path: str, request: Request, ctx: RunContextDep) -> Response:
    """Run the live version at ``path`` and answer with its result (422 with the error when
    the job fails)."""
    args = await request_args(request)
    runs = ctx.platform.runs
    return await _run_and_wait(
        ctx,
        lambda options: runs.run_script_by_path(
            ctx.workspace, ctx.actor, path, args, options, access=ctx.access
        ),
        saved=True,
    )


@router.get(
    "/run_wait_result/p/{path:path}",
    openapi_extra={"parameters": [*_RUN_PARAMETERS, *_WEBHOOK_PARAMETERS]},
    responses=_RESULT_RESPONSE,
)
async def run_wait_result_by_path_get(
    path: str, request: Request, ctx: RunContextDep, payload: str | None = None
) -> Response:
    """As the POST form, the arguments given as ``?payload=<url-safe base64 of JSON>``."""
    raw = b""
    if payload:
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        except ValueError:
            raise BadInput("payload is not url-safe base64") from None
    args = await request_args(request, raw)
    runs = ctx.platform.runs
    return await _run_and_wait(
        ctx,
        lambda options: runs.run_script_by_path(
            ctx.workspace, ctx.actor, path, args, options, access=ctx.access
        ),
        saved=True,
    )


@router.post("/run_wait_result/h/{hash}", openapi_extra=_ARGS_BODY, responses=_RESULT_RESPONSE)
async def run_wait_result_by_hash(hash: str, request: Request, ctx: RunContextDep) -> Response:
    """Run one exact version and answer with its result."""
    await ctx.check_hash_scope(hash)
    args = await request_args(request)
    runs = ctx.platform.runs
    return await _run_and_wait(
        ctx,
        lambda options: runs.run_script_by_hash(
            ctx.workspace, ctx.actor, hash, args, options, access=ctx.access
        ),
        saved=True,
    )


@router.post("/run_wait_result/preview", openapi_extra=_RUN_EXTRA, responses=_RESULT_RESPONSE)
async def run_wait_result_preview(body: PreviewBody, ctx: RunContextDep) -> Response:
    """Run code sent in the request and answer with its result."""
    return await _run_preview_and_wait(body, ctx)


@router.post("/run_inline/preview", openapi_extra=_RUN_EXTRA, responses=_RESULT_RESPONSE)
async def run_inline_preview(body: PreviewBody, ctx: RunContextDep) -> Response:
    """Run code sent in the request and answer with its result: what ``wmill``'s
    ``run_inline_script_preview`` calls on a local server (Windmill runs it in the server
    process; here it is a job like any preview, so it is sandboxed, logged and audited)."""
    return await _run_preview_and_wait(body, ctx)


async def _run_preview_and_wait(body: PreviewBody, ctx: RunContext) -> Response:
    # Refused before anything is queued (the submitter checks again).
    ctx.access.require_not_operator()
    runs = ctx.platform.runs
    preview = _preview(body)
    return await _run_and_wait(
        ctx,
        lambda options: runs.run_preview(
            ctx.workspace, ctx.actor, preview, options, access=ctx.access
        ),
    )


@router.post("/run_wait_result/preview_flow", openapi_extra=_FLOW_EXTRA, responses=_RESULT_RESPONSE)
async def run_wait_result_flow_preview(body: FlowPreviewBody, ctx: RunContextDep) -> Response:
    """Run a flow sent in the request and answer with its result (422 with the error when
    the flow fails)."""
    # Refused before anything is queued (the engine checks again), as script previews.
    ctx.access.require_not_operator()
    return await _run_and_wait(ctx, lambda options: _start_flow_preview(body, ctx, options.job_id))


@router.post("/run_wait_result/f/{path:path}", openapi_extra=_ARGS_BODY, responses=_RESULT_RESPONSE)
async def run_wait_result_flow_by_path(path: str, request: Request, ctx: RunContextDep) -> Response:
    """Run the flow saved at ``path`` and answer with its result (422 with the error when
    the flow fails)."""
    args = await request_args(request)
    _refuse_flow_options(ctx)
    flows = ctx.platform.flows
    return await _run_and_wait(
        ctx,
        lambda options: flows.run_flow(
            ctx.workspace,
            ctx.actor,
            path,
            args,
            job_id=options.job_id,
            access=ctx.access,
            trigger_kind=ctx.trigger_kind,
            idempotency_key=ctx.idempotency_key,
        ),
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
        "is_flow_step": row.get("flow_step_id") is not None,
        "flow_step_id": row.get("flow_step_id"),
        "same_worker": bool(((row.get("raw_flow") or {}).get("value") or {}).get("same_worker")),
        "flow_status": public_flow_status(row.get("flow_status")),
        "schedule_path": row.get("trigger")
        if row.get("trigger_kind") == SCHEDULE_TRIGGER
        else None,
        "trigger_kind": row.get("trigger_kind"),
        "trigger": row.get("trigger"),
        "mem_peak": None,
    }
    if full:
        common.update(
            args=row["args"],
            raw_code=row["raw_code"],
            logs=logs,
            root_job=str(row["root_job"]) if row["root_job"] else None,
            raw_flow=(row.get("raw_flow") or {}).get("value"),
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
        **_trigger_filter(filters),
    )


def _trigger_filter(filters: JobFilters) -> dict[str, str | None]:
    if filters.schedule_path is not None:
        if filters.trigger_kind not in (None, SCHEDULE_TRIGGER):
            raise BadInput("schedule_path lists a schedule's runs: leave trigger_kind out")
        return {"trigger_kind": SCHEDULE_TRIGGER, "trigger": filters.schedule_path}
    return {"trigger_kind": filters.trigger_kind, "trigger": filters.trigger_path}


JobFiltersDep = Annotated[JobFilters, Query()]


async def _list(platform: Platform, access: Access, query: rows.JobQuery) -> list[Job]:
    found = await rows.list_jobs(platform.db, access.workspace_id, query, access)
    return [_job(row, full=False) for row in found]


@router.get("/list", response_model_exclude_unset=True)
async def list_jobs(access: AccessDep, platform: PlatformDep, filters: JobFiltersDep) -> list[Job]:
    """Queued and running jobs, then finished ones, newest first."""
    query = _query(filters, queued_only=False, completed_only=False)
    return await _list(platform, access, query)


@router.get("/queue/list", response_model_exclude_unset=True)
async def list_queued_jobs(
    access: AccessDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[Job]:
    """Queued and running jobs only."""
    query = _query(filters, queued_only=True, completed_only=False)
    return await _list(platform, access, query)


@router.get("/completed/list", response_model_exclude_unset=True)
async def list_completed_jobs(
    access: AccessDep, platform: PlatformDep, filters: JobFiltersDep
) -> list[Job]:
    """Finished jobs only."""
    query = _query(filters, queued_only=False, completed_only=True)
    return await _list(platform, access, query)


# -- one job -------------------------------------------------------------------------------------


@unauthed_router.get("/get/{id}")
async def get_job_by_id(
    id: UUID, access: AccessDep, platform: PlatformDep, no_logs: bool = False
) -> Job:
    """A job, queued, running or finished, with its logs."""
    row = await rows.fetch_job(platform.db, access.workspace_id, id, access)
    logs = None if no_logs else await rows.get_logs(platform.db, id)
    return _job(row, logs=logs)


@unauthed_router.get("/completed/get/{id}")
async def get_completed_job(id: UUID, access: AccessDep, platform: PlatformDep) -> Job:
    """A finished job."""
    row = await rows.fetch_job(platform.db, access.workspace_id, id, access)
    if row["queued"]:
        raise _not_completed(id)
    return _job(row, logs=await rows.get_logs(platform.db, id))


def _not_completed(id: UUID) -> NotFound:
    return NotFound(f"job {id} has not completed yet")


@unauthed_router.get("/getupdate/{id}")
async def get_job_update(
    id: UUID,
    access: AccessDep,
    platform: PlatformDep,
    running: bool | None = None,
    log_offset: int = Query(0, ge=0, le=INT4_MAX),
) -> JobUpdate:
    """What changed since ``log_offset``: new log text, and whether the job runs or is done."""
    row = await rows.fetch_job(platform.db, access.workspace_id, id, access)
    new_logs, end = await rows.logs_since(platform.db, id, log_offset)
    return JobUpdate(
        running=bool(row["running"]) if row["queued"] else False,
        completed=not row["queued"],
        new_logs=new_logs,
        log_offset=end,
        flow_status=public_flow_status(row.get("flow_status")),
    )


@unauthed_router.get("/get_logs/{id}", response_class=PlainTextResponse)
async def get_job_logs(id: UUID, access: AccessDep, platform: PlatformDep) -> str:
    """The whole log of a job so far, as text."""
    await rows.fetch_job(platform.db, access.workspace_id, id, access)
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
async def get_completed_result(id: UUID, access: AccessDep, platform: PlatformDep) -> Response:
    """The result of a finished job (the error object when it failed)."""
    workspace = access.workspace_id
    stored = await rows.completed_result(platform.db, workspace, id, access)
    if stored is None:
        await rows.fetch_job(platform.db, workspace, id, access)
        raise _not_completed(id)
    return Response(content=stored.result, media_type="application/json")


@unauthed_router.get("/completed/get_result_maybe/{id}", response_model=ResultMaybe)
async def get_result_maybe(
    id: UUID, access: AccessDep, platform: PlatformDep, get_started: bool = False
) -> Response:
    """``{completed, started, success, result}``: the result when there is one, else state."""
    state = await rows.job_state(platform.db, access.workspace_id, id, access)
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


async def _cancel(platform: Platform, access: Access, id: UUID, body: CancelBody | None) -> str:
    # Whoever may see a job may cancel it, operators included (Windmill's rule: cancelling
    # is part of running); an invisible job is not found. Bad input is refused first.
    check_no_nul("reason", body.reason if body else None)
    await rows.fetch_job(platform.db, access.workspace_id, id, access)
    await cancel.cancel_job(
        platform.db,
        workspace_id=access.workspace_id,
        job_id=id,
        canceled_by=access.username,
        reason=body.reason if body else None,
    )
    return str(id)


@unauthed_router.post("/queue/cancel/{id}", response_class=PlainTextResponse)
async def cancel_queued_job(
    id: UUID,
    access: AccessDep,
    platform: PlatformDep,
    body: Annotated[CancelBody | None, Body()] = None,
) -> str:
    """Cancel a job: a queued one at once, a running one by killing its process."""
    return await _cancel(platform, access, id, body)


@router.post("/queue/cancel/{id}", response_class=PlainTextResponse)
async def cancel_job_endpoint(
    id: UUID,
    access: AccessDep,
    platform: PlatformDep,
    body: Annotated[CancelBody | None, Body()] = None,
) -> str:
    """Same as ``jobs_u/queue/cancel``."""
    return await _cancel(platform, access, id, body)


# -- the parent chain, and approval links ------------------------------------------------


@unauthed_router.get("/get_root_job_id/{id}")
async def get_root_job_id(id: UUID, access: AccessDep, platform: PlatformDep) -> str:
    """The root of the job's parent chain (the job itself when it has none), as a JSON
    string."""
    root = await rows.root_job_id(platform.db, access.workspace_id, id, access)
    return str(root)


def _job_token_secret(platform: Platform) -> bytes:
    assert platform.tokens is not None
    return platform.tokens.job_token_secret


ResumeId = Annotated[int, Path(ge=0, le=resume.MAX_RESUME_ID)]


@router.get("/resume_urls/{id}/{resume_id}")
async def get_resume_urls(
    id: UUID,
    resume_id: ResumeId,
    access: AccessDep,
    platform: PlatformDep,
    approver: str | None = None,
) -> ResumeUrls:
    """Signed links to resume or cancel a suspended step ``id`` as ``approver`` (anyone
    holding a link may use it, without an account)."""
    check_no_nul("approver", approver)
    await rows.fetch_job(platform.db, access.workspace_id, id, access)
    urls = resume.resume_urls(
        _job_token_secret(platform),
        base_url=platform.settings.public_url,
        workspace_id=access.workspace_id,
        job_id=id,
        resume_id=resume_id,
        approver=approver or None,
    )
    return ResumeUrls(approvalPage=urls.approval_page, resume=urls.resume, cancel=urls.cancel)


async def _link_access(
    request: Request, workspace: str, id: UUID, resume_id: int, signature: str
) -> Access | None:
    """Check an approval link's signature (403), its workspace (404); the caller's access
    when a token comes with it (the step may require a logged-in approver)."""
    platform: Platform = request.app.state.platform
    approver = request.query_params.get("approver") or None
    check_no_nul("approver", approver)
    resume.check_resume_signature(
        _job_token_secret(platform), workspace, id, resume_id, approver, signature
    )
    await check_workspace(request, workspace)
    if bearer_token(request) is None:
        return None
    actor = await authenticate(request)
    return await current_access(workspace, request, actor)


async def _resume_link(
    request: Request,
    workspace: str,
    id: UUID,
    resume_id: int,
    signature: str,
    *,
    approved: bool,
    payload: Any,
) -> PlainTextResponse:
    access = await _link_access(request, workspace, id, resume_id, signature)
    if request.method == "GET":
        # Decoded once the link is known good: a forged link learns nothing from it.
        payload = _query_payload(request.query_params.get("payload"))
    platform: Platform = request.app.state.platform
    # Windmill's approver: the link's, else the logged-in user's, else anonymous.
    approver = request.query_params.get("approver") or (
        access.username if access is not None else None
    )
    await platform.flows.resume_step(
        workspace_id=workspace,
        job_id=id,
        resume_id=resume_id,
        approved=approved,
        payload=payload,
        approver=approver,
        access=access,
    )
    return PlainTextResponse("job resumed" if approved else "job canceled", status_code=201)


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


_LINK_PARAMETERS: list[dict[str, Any]] = [
    {"name": "approver", "in": "query", "schema": {"type": "string"}}
]
_LINK_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _text("The job is not a suspended flow step, or this link or approver was used."),
    403: _text(
        "The signature does not sign this job, resume id and approver; or the approver is "
        "excluded (not logged in when the step requires it, self approval, groups)."
    ),
    404: _text("No such workspace or job."),
}
_LINK: dict[str, Any] = {
    "response_class": PlainTextResponse,
    "status_code": 201,
    "openapi_extra": {"parameters": _LINK_PARAMETERS},
    "responses": {201: _text("job resumed (or canceled)"), **_LINK_ERRORS},
}
_PAYLOAD_PARAMETER: dict[str, Any] = {
    "name": "payload",
    "in": "query",
    "description": "The resume payload: url-safe base64 of its JSON.",
    "schema": {"type": "string"},
}


def _query_payload(payload: str | None) -> Any:
    if not payload:
        return None
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise BadInput("payload is not url-safe base64 of a JSON value") from None


@public_router.get(
    "/resume/{id}/{resume_id}/{signature}",
    **{**_LINK, "openapi_extra": {"parameters": [*_LINK_PARAMETERS, _PAYLOAD_PARAMETER]}},
)
async def resume_suspended_job_get(
    id: UUID, resume_id: ResumeId, signature: str, workspace: str, request: Request
) -> PlainTextResponse:
    """Approve a suspended flow step with a signed link (the link is the key; a token is
    needed only when the step requires a logged-in approver). ``?payload=``: the resume
    payload, as url-safe base64 of its JSON."""
    return await _resume_link(
        request, workspace, id, resume_id, signature, approved=True, payload=None
    )


@public_router.post("/resume/{id}/{resume_id}/{signature}", **_LINK)
async def resume_suspended_job_post(
    id: UUID,
    resume_id: ResumeId,
    signature: str,
    workspace: str,
    request: Request,
    body: Annotated[Any, Body()] = None,
) -> PlainTextResponse:
    """Approve a suspended flow step; the body (any JSON, e.g. the resume form's values) is
    what the next step sees as ``resume``."""
    return await _resume_link(
        request, workspace, id, resume_id, signature, approved=True, payload=body
    )


@public_router.get("/cancel/{id}/{resume_id}/{signature}", **_LINK)
async def cancel_suspended_job_get(
    id: UUID, resume_id: ResumeId, signature: str, workspace: str, request: Request
) -> PlainTextResponse:
    """Disapprove a suspended flow step with a signed link: the flow fails (or goes on,
    with ``continue_on_disapprove_timeout``)."""
    return await _resume_link(
        request, workspace, id, resume_id, signature, approved=False, payload=None
    )


@public_router.post("/cancel/{id}/{resume_id}/{signature}", **_LINK)
async def cancel_suspended_job_post(
    id: UUID,
    resume_id: ResumeId,
    signature: str,
    workspace: str,
    request: Request,
    body: Annotated[Any, Body()] = None,
) -> PlainTextResponse:
    """As the GET form (the body is recorded with the disapproval)."""
    return await _resume_link(
        request, workspace, id, resume_id, signature, approved=False, payload=body
    )


@public_router.get(
    "/get_flow/{id}/{resume_id}/{signature}",
    openapi_extra={"parameters": _LINK_PARAMETERS},
    responses={k: v for k, v in _LINK_ERRORS.items() if k != 400},
)
async def get_suspended_job_flow(
    id: UUID, resume_id: ResumeId, signature: str, workspace: str, request: Request
) -> SuspendedJobFlow:
    """The flow of a suspended step, for its approval page: the flow job, the approvals so
    far, the step's resume form."""
    access = await _link_access(request, workspace, id, resume_id, signature)
    platform: Platform = request.app.state.platform
    step = await platform.flows.suspended_step(workspace, id)
    flow_row = await rows.fetch_job(platform.db, workspace, step.flow_job_id)
    if step.wait is not None:
        # Who may not approve may not read it either (Windmill's rule).
        check_approver(
            step.wait,
            username=access.username if access is not None else None,
            email=access.actor.email if access is not None else None,
            is_admin=access is not None and access.is_admin,
            groups=access.groups if access is not None else frozenset(),
            creator=flow_row["created_by"],
            creator_email=flow_row["email"],
        )
    suspend = step.module.suspend
    assert suspend is not None  # suspended_step refuses a step without it
    form = suspend.resume_form
    return SuspendedJobFlow(
        job=_job(flow_row),
        approvers=[
            Approval(resume_id=a.resume_id, approver=a.approver or "anonymous")
            for a in step.approvals
            if a.approved
        ],
        step_id=step.module.id,
        waiting=step.wait is not None,
        required_events=required_events(suspend),
        resume_form=form.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if form is not None
        else None,
        hide_cancel=bool(suspend.hide_cancel),
        user_auth_required=bool(suspend.user_auth_required),
        suspend_until=step.suspend_until,
        approvals=[
            ApprovalRecord(
                resume_id=a.resume_id,
                approver=a.approver or "anonymous",
                approved=a.approved,
                created_at=a.created_at,
            )
            for a in step.approvals
        ],
    )


@router.post(
    "/flow/resume/{id}",
    response_class=PlainTextResponse,
    status_code=201,
    responses={201: _text("job resumed")},
)
async def resume_suspended_flow_as_owner(
    id: UUID,
    access: AccessDep,
    platform: PlatformDep,
    body: Annotated[Any, Body()] = None,
) -> PlainTextResponse:
    """Approve the step flow ``id`` is suspended at, as an owner of the flow (its creator,
    a workspace admin, or who may write its path), without a resume link."""
    await platform.flows.resume_as_owner(
        workspace_id=access.workspace_id, flow_job_id=id, payload=body, access=access
    )
    return PlainTextResponse("job resumed", status_code=201)
