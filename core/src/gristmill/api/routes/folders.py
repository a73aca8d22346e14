"""Folders of a workspace: owners, ACL, usage."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.folders import (
    Folder,
    FolderOwner,
    FolderUsage,
    NewFolder,
    UpdateFolder,
)
from gristmill.validation import MAX_PER_PAGE
from gristmill.workspace import folders

__all__ = ["router"]

router = APIRouter(tags=["folders"], route_class=AuthenticatedRoute)

_BASE = "/w/{workspace}/folders"


def _model(workspace: str, folder: folders.Folder) -> Folder:
    return Folder(
        workspace_id=workspace,
        name=folder.name,
        display_name=folder.display_name,
        summary=folder.summary,
        owners=folder.owners,
        extra_perms=folder.extra_perms,
        created_by=folder.created_by,
        edited_at=folder.edited_at,
    )


@router.get(f"{_BASE}/list")
async def list_folders(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: int = Query(MAX_PER_PAGE, ge=1, le=MAX_PER_PAGE),
) -> list[Folder]:
    """The folders the caller sees (owner of, or named by their ACL); admins see all."""
    rows = await folders.list_folders(platform.db, access, page, per_page)
    return [_model(access.workspace_id, f) for f in rows]


@router.get(f"{_BASE}/listnames")
async def list_folder_names(access: AccessDep, platform: PlatformDep) -> list[str]:
    return await folders.list_folder_names(platform.db, access)


@router.post(f"{_BASE}/create", status_code=201, response_class=PlainTextResponse)
async def create_folder(body: NewFolder, access: AccessDep, platform: PlatformDep) -> str:
    """A new folder (not operators); the creator becomes one of its owners."""
    change = folders.FolderChange(
        summary=body.summary,
        display_name=body.display_name,
        owners=body.owners,
        extra_perms=body.extra_perms,
    )
    await folders.create_folder(platform.db, access, body.name, change)
    return f"Created folder {body.name}"


@router.get(f"{_BASE}/get/{{name}}")
async def get_folder(name: str, access: AccessDep, platform: PlatformDep) -> Folder:
    return _model(access.workspace_id, await folders.get_folder(platform.db, access, name))


@router.get(f"{_BASE}/exists/{{name}}")
async def folder_exists(name: str, access: AccessDep, platform: PlatformDep) -> bool:
    return await folders.folder_exists(platform.db, access, name)


@router.post(f"{_BASE}/update/{{name}}", response_class=PlainTextResponse)
async def update_folder(
    name: str, body: UpdateFolder, access: AccessDep, platform: PlatformDep
) -> str:
    """Change the summary, owners or ACL (folder owners and admins)."""
    change = folders.FolderChange(
        summary=body.summary,
        display_name=body.display_name,
        owners=body.owners,
        extra_perms=body.extra_perms,
    )
    await folders.update_folder(platform.db, access, name, change)
    return f"Updated folder {name}"


@router.delete(f"{_BASE}/delete/{{name}}", response_class=PlainTextResponse)
async def delete_folder(name: str, access: AccessDep, platform: PlatformDep) -> str:
    """Delete the folder (owners and admins); its items stay, visible to admins."""
    await folders.delete_folder(platform.db, access, name)
    return f"Deleted folder {name}"


@router.post(f"{_BASE}/addowner/{{name}}", response_class=PlainTextResponse)
async def add_owner(name: str, body: FolderOwner, access: AccessDep, platform: PlatformDep) -> str:
    await folders.add_owner(platform.db, access, name, body.owner)
    return f"Added {body.owner} to folder {name}"


@router.post(f"{_BASE}/removeowner/{{name}}", response_class=PlainTextResponse)
async def remove_owner(
    name: str, body: FolderOwner, access: AccessDep, platform: PlatformDep
) -> str:
    await folders.remove_owner(platform.db, access, name, body.owner)
    return f"Removed {body.owner} from folder {name}"


@router.get(f"{_BASE}/getusage/{{name}}")
async def folder_usage(name: str, access: AccessDep, platform: PlatformDep) -> FolderUsage:
    usage = await folders.folder_usage(platform.db, access, name)
    return FolderUsage(
        scripts=usage.scripts,
        flows=usage.flows,
        apps=usage.apps,
        resources=usage.resources,
        variables=usage.variables,
        schedules=usage.schedules,
    )


@router.get(f"{_BASE}/is_owner/{{path:path}}")
async def is_owner(path: str, access: AccessDep) -> bool:
    """Whether the caller owns the folder ``path`` (a name, or an item path ``f/<name>/...``)."""
    return folders.is_owner(access, path)
