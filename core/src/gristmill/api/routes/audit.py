"""The audit log (admins)."""

from __future__ import annotations

from fastapi import APIRouter

from gristmill.api.deps import AuthenticatedRoute

__all__ = ["router"]

router = APIRouter(tags=["audit"], route_class=AuthenticatedRoute)
