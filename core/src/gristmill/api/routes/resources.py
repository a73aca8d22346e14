"""Resources and resource types."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["resources"], route_class=AuthenticatedRoute)
