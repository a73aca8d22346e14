"""Per-item permissions (extra_perms)."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["acls"], route_class=AuthenticatedRoute)
