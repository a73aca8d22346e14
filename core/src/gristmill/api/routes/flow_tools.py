"""Flow tools: restarting a finished flow from a step (Windmill's
``jobs/restart/f/{id}/from/{step_id}[/{branch_or_iteration_n}]``) and running one step of
a flow alone (``flows/test_step``, Gristmill's: Windmill's editor computes the step's
arguments in the browser and sends a script preview)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.flow_tools import TestStepBody
from gristmill.auth.permissions import Access
from gristmill.errors import BadInput
from gristmill.flows import store
from gristmill.flows.model import OpenFlow, parse_flow
from gristmill.flows.testing import StepContext, step_to_run
from gristmill.queue.states import JobStatus
from gristmill.queue.submit import Preview, RunOptions
from gristmill.server.platform import Platform

__all__ = ["flows_router", "jobs_router", "routers"]

jobs_router = APIRouter(prefix="/w/{workspace}/jobs", tags=["jobs"], route_class=AuthenticatedRoute)
flows_router = APIRouter(
    prefix="/w/{workspace}/flows", tags=["flows"], route_class=AuthenticatedRoute
)

#: ``?job_id=``: the new job's id, chosen by the caller.
JobIdQuery = Annotated[UUID | None, Query(description="Id for the new job, chosen by the caller.")]

#: Both, for the app to include.
routers = (jobs_router, flows_router)

_ARGS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": True},
                "example": {"n": 3},
            }
        },
        "description": "The flow's args for the new run (default: the old run's).",
    },
}


def _restart_args(raw: bytes) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"the request body is not valid JSON ({exc})") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadInput("the request body must be the flow's args, a JSON object (or empty)")
    return value  # pyright: ignore[reportUnknownVariableType]


@jobs_router.post(
    "/restart/f/{id}/from/{step_id}",
    status_code=201,
    response_class=PlainTextResponse,
    openapi_extra=_ARGS_BODY,
)
async def restart_flow_at_step(
    id: UUID,
    step_id: str,
    request: Request,
    access: AccessDep,
    platform: PlatformDep,
    job_id: JobIdQuery = None,
) -> str:
    """Run the flow of the ended flow job ``id`` again from ``step_id``, reusing the
    results of the steps before it; returns the new flow job's id (docs/flows.md
    "Restarting from a step")."""
    return await _restart(request, access, platform, id, step_id, None, job_id)


@jobs_router.post(
    "/restart/f/{id}/from/{step_id}/{branch_or_iteration_n}",
    status_code=201,
    response_class=PlainTextResponse,
    openapi_extra=_ARGS_BODY,
)
async def restart_flow_at_iteration(
    id: UUID,
    step_id: str,
    branch_or_iteration_n: int,
    request: Request,
    access: AccessDep,
    platform: PlatformDep,
    job_id: JobIdQuery = None,
) -> str:
    """As ``restart/f/{id}/from/{step_id}``, the loop (or ``branchall``) that is or holds
    ``step_id`` restarting at iteration (branch) ``branch_or_iteration_n``, the earlier
    iterations' results reused."""
    return await _restart(request, access, platform, id, step_id, branch_or_iteration_n, job_id)


async def _restart(
    request: Request,
    access: Access,
    platform: Platform,
    old: UUID,
    step_id: str,
    iteration: int | None,
    job_id: UUID | None,
) -> str:
    args = _restart_args(await request.body())
    new = await platform.flows.restart(
        access.workspace_id,
        access.actor,
        old,
        step_id,
        iteration,
        args,
        job_id=job_id,
        access=access,
    )
    return str(new)


async def _start_step(
    body: TestStepBody, access: Access, platform: Platform, job_id: UUID | None
) -> UUID:
    access.require_not_operator()  # the step's code runs as a preview
    if (body.value is None) == (body.path is None):
        raise BadInput("test_step: give the flow as `value` or the path of a saved one, not both")
    flow: OpenFlow
    if body.value is not None:
        flow = parse_flow({"summary": "", "value": body.value})
    else:
        assert body.path is not None
        row = await store.get_flow(platform.db, access, body.path)
        flow = parse_flow({"summary": "", "value": row.value or {}})
    step = step_to_run(
        flow,
        body.step_id,
        StepContext(body.flow_input, body.results, body.previous_result, body.iter),
        evaluator=platform.flows.evaluator,
    )
    options = RunOptions(job_id=job_id, tag=step.tag)
    runs = platform.runs
    if step.kind == "rawscript":
        preview = Preview(
            step.content or "", step.language or "", step.args, step.path, step.tag, step.lock
        )
        return await runs.run_preview(
            access.workspace_id, access.actor, preview, options, access=access
        )
    if step.hash:
        return await runs.run_script_by_hash(
            access.workspace_id, access.actor, step.hash, step.args, options, access=access
        )
    assert step.path is not None
    return await runs.run_script_by_path(
        access.workspace_id, access.actor, step.path, step.args, options, access=access
    )


@flows_router.post("/test_step", status_code=201, response_class=PlainTextResponse)
async def test_flow_step(
    body: TestStepBody,
    access: AccessDep,
    platform: PlatformDep,
    job_id: JobIdQuery = None,
) -> str:
    """Run one step of a flow alone: its input transforms evaluated with the context given
    (``flow_input``, ``results``, ``previous_result``, ``iter``), the step queued as a
    preview job (a saved script's run for a ``script`` step). Returns the job's id."""
    return str(await _start_step(body, access, platform, job_id))


@flows_router.post(
    "/test_step_wait_result",
    responses={
        200: {
            "description": "The step's result (any JSON).",
            "content": {"application/json": {"schema": {}}},
        },
        422: {
            "description": "The step failed: its error object `{error: {name, message}}`.",
            "content": {"application/json": {"schema": {}}},
        },
    },
)
async def test_flow_step_wait_result(
    body: TestStepBody, access: AccessDep, platform: PlatformDep
) -> Response:
    """As ``test_step``, answering with the step's result (422 with the error when it
    fails); the job's id is in the ``x-job-id`` header."""
    job_id = uuid4()
    done = await platform.runs.run_and_wait(
        access.workspace_id,
        job_id,
        lambda: _start_step(body, access, platform, job_id),
        timeout_s=platform.settings.timeout_wait_result_s,
        queue_limit=platform.settings.queue_limit_wait_result,
    )
    return Response(
        content=done.result,
        media_type="application/json",
        status_code=200 if done.status == JobStatus.SUCCESS else 422,
        headers={"x-job-id": str(job_id)},
    )
