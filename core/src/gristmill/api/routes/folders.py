"""Folders of a workspace: owners and permissions."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["folders"], route_class=AuthenticatedRoute)
