"""Git sync (:mod:`gristmill.sync.git`): Windmill's ``edit_git_sync_config`` and
``get_settings`` (the git sync part), and Gristmill's status route (the setting, deployments
waiting, the last error, the last commit)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.api.schemas.git_sync import EditGitSyncConfig, GitSyncStatus, WorkspaceSettings
from gristmill.sync import git

__all__ = ["router"]

router = APIRouter(
    prefix="/w/{workspace}/workspaces", tags=["git_sync"], route_class=AuthenticatedRoute
)


@router.post("/edit_git_sync_config", response_class=PlainTextResponse)
async def edit_git_sync_config(
    body: EditGitSyncConfig, access: AccessDep, platform: PlatformDep
) -> PlainTextResponse:
    """Set the workspace's git sync (admins): each deployed script, flow or schedule is then
    committed to the repositories and pushed, in the background. No repository turns it off.
    400 when `git` is not installed on the server ("git not found") or a repository's resource
    is missing or holds no `url`."""
    settings = body.git_sync_settings
    data = settings.model_dump(exclude_none=True) if settings is not None else None
    await git.set_git_sync(platform.db, access, data)
    return PlainTextResponse("Edit git sync config for workspace " + access.workspace_id)


@router.get("/git_sync")
async def git_sync_status(access: AccessDep, platform: PlatformDep) -> GitSyncStatus:
    """The workspace's git sync setting and state (Gristmill's; Windmill shows the setting in
    `get_settings`)."""
    status = await git.get_git_sync(platform.db, access)
    return GitSyncStatus(
        git_sync_settings=status.settings,
        pending=status.pending,
        last_error=status.last_error,
        last_error_at=status.last_error_at,
        last_commit=status.last_commit,
        last_pushed_at=status.last_pushed_at,
    )


@router.get("/get_settings")
async def get_settings(access: AccessDep, platform: PlatformDep) -> WorkspaceSettings:
    """The workspace's settings as Windmill's `get_settings` shapes them, the ones Gristmill
    has: `git_sync` (what `wmill gitsync-settings pull` and `wmill init` read)."""
    status = await git.get_git_sync(platform.db, access)
    return WorkspaceSettings(workspace_id=access.workspace_id, git_sync=status.settings)
