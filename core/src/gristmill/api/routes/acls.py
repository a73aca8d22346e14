"""Per-item ACLs (``extra_perms``) of scripts, groups, folders, variables and resources."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.acls import AclOwner
from gristmill.workspace import acls

__all__ = ["router"]

router = APIRouter(tags=["acls"], route_class=AuthenticatedRoute)

_BASE = "/w/{workspace}/acls"


@router.get(f"{_BASE}/get/{{kind}}/{{path:path}}")
async def get_acl(
    kind: str, path: str, access: AccessDep, platform: PlatformDep
) -> dict[str, bool]:
    """The item's ``extra_perms`` (``{"u/alice": true, "g/team": false}``; true = writer).
    Kinds: script, group_, folder, variable, resource (others: 400 not supported yet)."""
    return await acls.get_acl(platform.db, access, kind, path)


@router.post(f"{_BASE}/add/{{kind}}/{{path:path}}", response_class=PlainTextResponse)
async def add_acl(
    kind: str, path: str, body: AclOwner, access: AccessDep, platform: PlatformDep
) -> str:
    """Grant ``owner`` read, or write with ``write: true`` (admins and the item's writers)."""
    await acls.add_acl(platform.db, access, kind, path, body.owner, body.write)
    return "Successfully modified granular acl"


@router.post(f"{_BASE}/remove/{{kind}}/{{path:path}}", response_class=PlainTextResponse)
async def remove_acl(
    kind: str, path: str, body: AclOwner, access: AccessDep, platform: PlatformDep
) -> str:
    await acls.remove_acl(platform.db, access, kind, path, body.owner)
    return "Successfully removed granular acl"
