"""What the health probes answer (load balancers, Kubernetes, monitoring)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from gristmill.server.health import CheckName

__all__ = ["HealthCheck", "Liveness", "Readiness"]


class Liveness(BaseModel):
    """The process serves requests (nothing else is checked)."""

    status: Literal["alive"] = "alive"
    version: str


class HealthCheck(BaseModel):
    """One check of the readiness probe."""

    name: CheckName
    ok: bool
    #: What was found: a latency, a version, or why the check failed.
    detail: str


class Readiness(BaseModel):
    """Whether this process can serve: ``ready`` only when every check passed (HTTP 200);
    otherwise HTTP 503 with the same body, ``failed`` naming the checks that did not."""

    ready: bool
    failed: list[str] = Field(description="The names of the checks that failed.")
    checks: list[HealthCheck]
    checked_at: dt.datetime
    duration_ms: float
