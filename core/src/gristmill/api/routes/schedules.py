"""Schedules (Windmill's ``/w/{workspace}/schedules`` routes and the global
``/schedules/preview``): thin over :mod:`gristmill.triggers.schedules`; firing is
:mod:`gristmill.triggers.ticker`'s."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.schedules import (
    EditSchedule,
    NewSchedule,
    PreviewSchedule,
    Schedule,
    ScheduleWJobs,
    SetEnabled,
)
from gristmill.errors import BadInput
from gristmill.triggers import schedules
from gristmill.validation import MAX_PER_PAGE

__all__ = ["global_router", "router"]

router = APIRouter(
    prefix="/w/{workspace}/schedules", tags=["schedules"], route_class=AuthenticatedRoute
)
global_router = APIRouter(prefix="/schedules", tags=["schedules"], route_class=AuthenticatedRoute)


def _draft(path: str, body: EditSchedule, script_path: str = "", is_flow: bool = False) -> Any:
    values = body.model_dump(exclude={"path", "script_path", "is_flow"})
    return schedules.ScheduleDraft(path=path, script_path=script_path, is_flow=is_flow, **values)


@router.post("/create", status_code=201, response_class=PlainTextResponse)
async def create_schedule(body: NewSchedule, access: AccessDep, platform: PlatformDep) -> str:
    """A new schedule; answers its path. Everything is checked before it is saved (400
    naming the field): the cron expression, the timezone, the script or flow (it must exist
    and the caller must be able to run it: the runs act as the caller), the arguments
    against its schema, the handlers, the retry."""
    await schedules.create_schedule(
        platform.db,
        access,
        _draft(body.path, body, body.script_path, body.is_flow),
        platform.input_limits,
    )
    return body.path


@router.post("/update/{path:path}", response_class=PlainTextResponse)
async def update_schedule(
    path: str, body: EditSchedule, access: AccessDep, platform: PlatformDep
) -> str:
    """Change the schedule at ``path`` (its script or flow and enabled flag stay); the
    caller becomes who its runs act as. Answers the path."""
    await schedules.update_schedule(
        platform.db, access, path, _draft(path, body), platform.input_limits
    )
    return path


@router.post("/setenabled/{path:path}", response_class=PlainTextResponse)
async def set_schedule_enabled(
    path: str, body: SetEnabled, access: AccessDep, platform: PlatformDep
) -> str:
    """Enable (from the next tick after now; clears a past error) or disable a schedule."""
    await schedules.set_enabled(platform.db, access, path, body.enabled)
    return f"succesfully updated schedule at path {path} to status {str(body.enabled).lower()}"


@router.delete("/delete/{path:path}", response_class=PlainTextResponse)
async def delete_schedule(path: str, access: AccessDep, platform: PlatformDep) -> str:
    """Remove the schedule at ``path`` (its past runs stay in the history)."""
    await schedules.delete_schedule(platform.db, access, path)
    return f"schedule {path} deleted"


@router.get("/get/{path:path}")
async def get_schedule(path: str, access: AccessDep, platform: PlatformDep) -> Schedule:
    """The schedule at ``path``, with its firing state (``next_tick``, skipped ticks, the
    ``error`` that disabled it)."""
    return Schedule.model_validate(await schedules.get_schedule(platform.db, access, path))


@router.get("/exists/{path:path}")
async def schedule_exists(path: str, access: AccessDep, platform: PlatformDep) -> bool:
    """Whether a schedule the caller may read is at ``path``."""
    return await schedules.schedule_exists(platform.db, access, path)


def _query(
    page: int,
    per_page: int,
    path: str | None,
    is_flow: bool | None,
    path_start: str | None,
    args: str | None,
) -> schedules.ScheduleQuery:
    parsed = None
    if args is not None:
        try:
            parsed = orjson.loads(args)
        except orjson.JSONDecodeError as exc:
            raise BadInput(f"args: not JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise BadInput("args: a JSON object the schedules' args must contain")
    return schedules.ScheduleQuery(
        page=page,
        per_page=per_page,
        script_path=path,
        is_flow=is_flow,
        path_start=path_start,
        args=parsed,
    )


@router.get("/list")
async def list_schedules(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
    path: str | None = None,
    is_flow: bool | None = None,
    path_start: str | None = None,
    args: str | None = None,
) -> list[Schedule]:
    """The schedules the caller may read, most recently edited first. ``path``: of the
    script or flow they run; ``args``: a JSON object their args contain."""
    query = _query(page, per_page, path, is_flow, path_start, args)
    rows = await schedules.list_schedules(platform.db, access, query)
    return [Schedule.model_validate(row) for row in rows]


@router.get("/list_with_jobs")
async def list_schedules_with_jobs(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
) -> list[ScheduleWJobs]:
    """As ``list``, each with its last 20 ended runs (``jobs``: id, success, duration_ms)."""
    rows = await schedules.list_schedules(
        platform.db, access, schedules.ScheduleQuery(page=page, per_page=per_page)
    )
    jobs = await schedules.recent_jobs(platform.db, access.workspace_id, [r["path"] for r in rows])
    return [ScheduleWJobs.model_validate({**row, "jobs": jobs[row["path"]]}) for row in rows]


@global_router.post("/preview")
async def preview_schedule(body: PreviewSchedule) -> list[dt.datetime]:
    """The next 5 fire times of a cron expression in a timezone (nothing is saved)."""
    return schedules.preview(body.schedule, body.timezone, body.cron_version)
