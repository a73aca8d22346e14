"""Workspaces: creating, listing, deleting; adding members and inviting users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, ActorDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.users import WorkspaceInvite
from gristmill.api.schemas.workspaces import (
    CreateWorkspace,
    DeleteInvite,
    NewWorkspaceInvite,
    NewWorkspaceUser,
    UserWorkspace,
    UserWorkspaceList,
    Workspace,
    WorkspaceId,
    WsSpecificItem,
)
from gristmill.auth.permissions import Role
from gristmill.errors import NotFound
from gristmill.validation import MAX_PER_PAGE
from gristmill.workspace import members, workspaces

__all__ = ["router"]

router = APIRouter(tags=["workspaces"], route_class=AuthenticatedRoute)

PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]


def _workspace(w: workspaces.Workspace) -> Workspace:
    return Workspace(id=w.id, name=w.name, owner=w.owner, deleted=w.deleted)


# -- the instance ---------------------------------------------------------------------------


@router.get("/workspaces/list")
async def list_workspaces(actor: ActorDep, platform: PlatformDep) -> list[Workspace]:
    """The caller's workspaces (a super admin's: all)."""
    return [_workspace(w) for w in await workspaces.list_user_workspaces(platform.db, actor)]


@router.get("/workspaces/list_as_superadmin")
async def list_as_superadmin(
    actor: ActorDep, platform: PlatformDep, page: Page = 1, per_page: PerPage = 100
) -> list[Workspace]:
    """Every workspace, deleted ones included (super admins)."""
    found = await workspaces.list_all_workspaces(platform.db, actor, page=page, per_page=per_page)
    return [_workspace(w) for w in found]


@router.get("/workspaces/users")
async def user_workspaces(actor: ActorDep, platform: PlatformDep) -> UserWorkspaceList:
    """The caller's email and workspaces, with their username in each (the CLI's
    ``workspace list-remote``)."""
    found = await workspaces.list_user_workspaces(platform.db, actor)
    return UserWorkspaceList(
        email=actor.email,
        workspaces=[
            UserWorkspace(
                id=w.id,
                name=w.name,
                username=actor.username,
                created_by=w.owner,
                disabled=w.disabled,
            )
            for w in found
        ],
    )


@router.post("/workspaces/create", status_code=201, response_class=PlainTextResponse)
async def create_workspace(
    body: CreateWorkspace, actor: ActorDep, platform: PlatformDep
) -> PlainTextResponse:
    """Create a workspace; the creator becomes its admin. Answers the id (201)."""
    workspace_id = await workspaces.create_workspace(
        platform.db,
        actor,
        workspace_id=body.id,
        name=body.name,
        require_superadmin=platform.settings.create_workspace_require_superadmin,
    )
    return PlainTextResponse(workspace_id, status_code=201)


@router.post("/workspaces/exists")
async def exists(body: WorkspaceId, platform: PlatformDep) -> bool:
    """Whether a workspace has this id (JSON ``true``/``false``)."""
    return await workspaces.workspace_exists(platform.db, body.id)


@router.get("/workspaces/create_workspace_require_superadmin", response_class=PlainTextResponse)
async def create_workspace_require_superadmin(platform: PlatformDep) -> PlainTextResponse:
    """``true`` when only super admins may create workspaces (as text, as Windmill)."""
    return PlainTextResponse(
        "true" if platform.settings.create_workspace_require_superadmin else "false"
    )


#: Windmill's global settings that Gristmill answers (its other instance settings are
#: environment variables, docs/deploy.md): usernames are instance-wide here, so creating a
#: workspace never asks for one (what ``wmill workspace add --create`` reads).
_GLOBAL_SETTINGS: dict[str, bool] = {"automate_username_creation": True}


@router.get("/settings/global/{key}")
async def get_global_setting(key: str) -> bool:
    """One of Windmill's global settings, for clients that read it before acting."""
    if key not in _GLOBAL_SETTINGS:
        raise NotFound(
            f"Gristmill has no global setting {key!r}: its instance settings are environment "
            "variables (docs/deploy.md)"
        )
    return _GLOBAL_SETTINGS[key]


# -- one workspace --------------------------------------------------------------------------


@router.get("/w/{workspace}/workspaces/get_workspace_name", response_class=PlainTextResponse)
async def get_workspace_name(access: AccessDep, platform: PlatformDep) -> PlainTextResponse:
    workspace = await workspaces.get_workspace(platform.db, access.workspace_id)
    return PlainTextResponse(workspace.name)


@router.get("/w/{workspace}/workspaces/list_ws_specific")
async def list_ws_specific(access: AccessDep) -> list[WsSpecificItem]:
    """Items kept out of git sync (the CLI's ``sync pull`` asks): Gristmill has none."""
    return []


@router.post("/w/{workspace}/workspaces/add_user", response_class=PlainTextResponse)
async def add_user(
    body: NewWorkspaceUser, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    """Make an existing user a member (admins)."""
    await members.add_user(
        platform.db,
        access,
        email=body.email,
        is_admin=body.is_admin,
        operator=body.operator,
        username=body.username,
    )
    return PlainTextResponse(f"{body.email} added to {access.workspace_id}")


@router.post("/w/{workspace}/workspaces/invite_user", response_class=PlainTextResponse)
async def invite_user(
    body: NewWorkspaceInvite, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    """Invite an email to the workspace (admins)."""
    await members.invite_user(
        platform.db, access, email=body.email, is_admin=body.is_admin, operator=body.operator
    )
    return PlainTextResponse(f"{body.email} invited to {access.workspace_id}")


@router.post("/w/{workspace}/workspaces/delete_invite", response_class=PlainTextResponse)
async def delete_invite(
    body: DeleteInvite, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    await members.delete_invite(platform.db, access, email=body.email)
    return PlainTextResponse(f"invitation of {body.email} deleted")


@router.get("/w/{workspace}/workspaces/list_pending_invites")
async def list_pending_invites(access: AccessDep, platform: PlatformDep) -> list[WorkspaceInvite]:
    """The workspace's pending invitations (admins)."""
    return [
        WorkspaceInvite(
            workspace_id=i.workspace_id,
            email=i.email,
            is_admin=i.role is Role.ADMIN,
            operator=i.role is Role.OPERATOR,
        )
        for i in await members.list_pending_invites(platform.db, access)
    ]


@router.post("/w/{workspace}/workspaces/leave", response_class=PlainTextResponse)
async def leave(access: AccessDep, platform: PlatformDep) -> PlainTextResponse:
    """The caller leaves the workspace (not its last admin)."""
    await members.leave(platform.db, access)
    return PlainTextResponse(f"left workspace {access.workspace_id}")


@router.delete("/w/{workspace}/workspaces/delete", response_class=PlainTextResponse)
async def delete_workspace(access: AccessDep, platform: PlatformDep) -> PlainTextResponse:
    """Delete the workspace (admins; soft: it stops being served, its rows stay)."""
    await workspaces.delete_workspace(platform.db, access)
    return PlainTextResponse(f"workspace {access.workspace_id} deleted")


@router.post("/w/{workspace}/workspaces/archive", response_class=PlainTextResponse)
async def archive_workspace(access: AccessDep, platform: PlatformDep) -> PlainTextResponse:
    """Windmill's name for the same soft delete."""
    await workspaces.delete_workspace(platform.db, access)
    return PlainTextResponse(f"workspace {access.workspace_id} archived")
