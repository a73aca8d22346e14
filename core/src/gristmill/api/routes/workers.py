"""Worker processes heard from recently."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.workers import WorkerInfo

__all__ = ["router"]

router = APIRouter(tags=["meta"], route_class=AuthenticatedRoute)


@router.get("/workers/list")
async def list_workers(platform: PlatformDep) -> list[WorkerInfo]:
    """Worker processes heard from recently: their tags, and the runtimes they cannot run."""
    assert platform.capabilities is not None
    workers = await platform.capabilities.live_workers(fresh=True)
    return [
        WorkerInfo(
            worker_instance=w["worker_instance"],
            worker_group=w["worker_group"],
            hostname=w["hostname"],
            pid=w["pid"],
            num_workers=w["num_workers"],
            custom_tags=w["tags"],
            unavailable_runtimes=w["unavailable"],
            started_at=w["started_at"],
            last_ping=w["ping_at"],
        )
        for w in workers
    ]
