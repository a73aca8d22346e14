"""Variables, plain and secret."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["variables"], route_class=AuthenticatedRoute)
