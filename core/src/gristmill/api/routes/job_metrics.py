"""Job progress: a running job reports how far it is (``wmill.set_progress``), anyone who
may see the job reads it."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.job_metrics import SetProgressBody
from gristmill.errors import Forbidden
from gristmill.queue import rows

__all__ = ["router"]

router = APIRouter(tags=["job_metrics"], route_class=AuthenticatedRoute)


@router.post("/w/{workspace}/job_metrics/set_progress/{id}", response_class=PlainTextResponse)
async def set_job_progress(
    id: UUID, body: SetProgressBody, access: AccessDep, platform: PlatformDep
) -> str:
    """Set a queued or running job's progress (0-100). Allowed to the job itself (its
    ``WM_TOKEN``), to the user it runs as, and to admins; 400 once the job has finished."""
    row = await rows.fetch_job(platform.db, access.workspace_id, id, access)
    actor = access.actor
    own = actor.job_id == id or (
        actor.job_id is None and row["permissioned_as"] == actor.permissioned_as
    )
    if not (own or access.is_admin):
        raise Forbidden(
            f"only job {id} itself, the user it runs as or an admin may set its progress"
        )
    await rows.set_job_progress(platform.db, access.workspace_id, id, body.percent)
    return f"progress of job {id} set to {body.percent}%"


@router.get("/w/{workspace}/job_metrics/get_progress/{id}")
async def get_job_progress(id: UUID, access: AccessDep, platform: PlatformDep) -> int | None:
    """The job's last reported progress (0-100), ``null`` when it reported none."""
    await rows.fetch_job(platform.db, access.workspace_id, id, access)
    return await rows.job_progress(platform.db, id)
