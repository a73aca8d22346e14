"""The audit log (admins): ``/api/w/{workspace}/audit/{list,get/{id}}``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.audit import AuditLog
from gristmill.auth.audit import ActionKind, AuditEntry, AuditFilter, get_audit, list_audit

__all__ = ["router"]

router = APIRouter(tags=["audit"], route_class=AuthenticatedRoute)


def _log(entry: AuditEntry) -> AuditLog:
    return AuditLog(
        id=entry.id,
        timestamp=entry.timestamp,
        username=entry.username,
        operation=entry.operation,
        action_kind=entry.action_kind,
        resource=entry.resource,
        parameters=entry.parameters,
    )


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    return names or None


@router.get("/w/{workspace}/audit/list")
async def list_audit_logs(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 30,
    before: dt.datetime | None = None,
    after: dt.datetime | None = None,
    username: str | None = None,
    operation: str | None = None,
    operations: str | None = None,
    exclude_operations: str | None = None,
    resource: str | None = None,
    action_kind: ActionKind | None = None,
) -> list[AuditLog]:
    """The workspace's audit log, newest first (admins only). ``operation`` and ``resource``
    match exactly or as a prefix; ``operations``/``exclude_operations`` are comma lists."""
    entries = await list_audit(
        platform.db,
        access,
        AuditFilter(
            before=before,
            after=after,
            username=username,
            operation=operation,
            operations=_names(operations),
            exclude_operations=_names(exclude_operations),
            resource=resource,
            action_kind=action_kind,
        ),
        page=page,
        per_page=per_page,
    )
    return [_log(e) for e in entries]


@router.get("/w/{workspace}/audit/get/{id}")
async def get_audit_log(
    id: Annotated[int, Path(ge=1, le=2**63 - 1)], access: AccessDep, platform: PlatformDep
) -> AuditLog:
    """One entry (admins only)."""
    return _log(await get_audit(platform.db, access, id))
