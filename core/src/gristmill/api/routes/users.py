"""Users of the instance and members of a workspace; API tokens."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["users"], route_class=AuthenticatedRoute)
