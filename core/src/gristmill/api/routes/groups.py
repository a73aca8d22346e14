"""Groups of a workspace and their members."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.groups import EditGroup, Group, GroupMember, NewGroup
from gristmill.workspace import groups

__all__ = ["router"]

router = APIRouter(tags=["groups"], route_class=AuthenticatedRoute)

_BASE = "/w/{workspace}/groups"


def _model(group: groups.Group) -> Group:
    return Group(
        name=group.name,
        summary=group.summary,
        members=group.members,
        extra_perms=group.extra_perms,
    )


@router.get(f"{_BASE}/list")
async def list_groups(access: AccessDep, platform: PlatformDep) -> list[Group]:
    """Every group with its members; ``all`` (every member) first."""
    return [_model(g) for g in await groups.list_groups(platform.db, access)]


@router.get(f"{_BASE}/listnames")
async def list_group_names(access: AccessDep, platform: PlatformDep) -> list[str]:
    return await groups.list_group_names(platform.db, access)


@router.post(f"{_BASE}/create", status_code=201, response_class=PlainTextResponse)
async def create_group(body: NewGroup, access: AccessDep, platform: PlatformDep) -> str:
    """A new group (not operators); its creator becomes one of its writers."""
    await groups.create_group(platform.db, access, body.name, body.summary)
    return f"Created group {body.name}"


@router.get(f"{_BASE}/get/{{name}}")
async def get_group(name: str, access: AccessDep, platform: PlatformDep) -> Group:
    return _model(await groups.get_group(platform.db, access, name))


@router.post(f"{_BASE}/update/{{name}}", response_class=PlainTextResponse)
async def update_group(name: str, body: EditGroup, access: AccessDep, platform: PlatformDep) -> str:
    await groups.update_group(platform.db, access, name, body.summary)
    return f"Updated group {name}"


@router.delete(f"{_BASE}/delete/{{name}}", response_class=PlainTextResponse)
async def delete_group(name: str, access: AccessDep, platform: PlatformDep) -> str:
    await groups.delete_group(platform.db, access, name)
    return f"Deleted group {name}"


@router.post(f"{_BASE}/adduser/{{name}}", response_class=PlainTextResponse)
async def add_user(name: str, body: GroupMember, access: AccessDep, platform: PlatformDep) -> str:
    await groups.add_member(platform.db, access, name, body.username)
    return f"Added {body.username} to group {name}"


@router.post(f"{_BASE}/removeuser/{{name}}", response_class=PlainTextResponse)
async def remove_user(
    name: str, body: GroupMember, access: AccessDep, platform: PlatformDep
) -> str:
    await groups.remove_member(platform.db, access, name, body.username)
    return f"Removed {body.username} from group {name}"
