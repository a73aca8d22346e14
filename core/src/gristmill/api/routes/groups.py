"""Groups of a workspace and their members."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["groups"], route_class=AuthenticatedRoute)
