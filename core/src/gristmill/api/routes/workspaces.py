"""Workspaces: creating, listing, members and invitations."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["workspaces"], route_class=AuthenticatedRoute)
