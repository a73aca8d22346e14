"""Job progress."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["job_metrics"], route_class=AuthenticatedRoute)
