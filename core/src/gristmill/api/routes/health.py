"""Health probes: public (a load balancer or Kubernetes calls them without a token)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Response

from gristmill import __version__
from gristmill.api.deps import PlatformDep
from gristmill.api.schemas.health import HealthCheck, Liveness, Readiness
from gristmill.server.health import check_readiness
from gristmill.server.platform import Platform

__all__ = ["health_app", "router"]

router = APIRouter(tags=["health"])

# A probe's answer describes this moment: no proxy or client may reuse it.
_NO_STORE = {"Cache-Control": "no-store"}
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "model": Readiness,
        "description": "Not ready: `failed` names the checks that failed (JSON). Plain text "
        "when the check itself could not run, as for any operation.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.get("/health/live")
async def get_liveness(response: Response) -> Liveness:
    """200 while the process's event loop serves requests; touches no database (a database
    outage must not get a process restarted: see `/health/ready`)."""
    response.headers.update(_NO_STORE)
    return Liveness(version=__version__)


@router.get("/health/ready", responses=_NOT_READY)
async def get_readiness(platform: PlatformDep, response: Response) -> Readiness:
    """200 when the database answers (within 1 s), its schema has every migration this code
    expects and, in a process that runs workers, they run and announced themselves recently;
    otherwise 503 with the same body saying which check failed and why."""
    started = time.monotonic()
    results = await check_readiness(platform)
    failed = [r.name for r in results if not r.ok]
    response.headers.update(_NO_STORE)
    if failed:
        response.status_code = 503
    return Readiness(
        ready=not failed,
        failed=failed,
        checks=[HealthCheck(name=r.name, ok=r.ok, detail=r.detail) for r in results],
        checked_at=dt.datetime.now(dt.UTC),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


def health_app(platform: Platform) -> FastAPI:
    """The probes alone, for a worker-only process (``GRISTMILL_HEALTH_PORT``): the same
    paths and answers as on an API process, nothing else (no OpenAPI document either)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.platform = platform
    app.include_router(router, prefix="/api")
    return app
