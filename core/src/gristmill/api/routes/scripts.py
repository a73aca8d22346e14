"""Scripts: saving versions (each a hash), reading them, their history."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import (
    AccessDep,
    ActorDep,
    AuthenticatedRoute,
    Page,
    PlatformDep,
)
from gristmill.api.schemas.scripts import (
    DeploymentStatus,
    NewScript,
    Script,
    ScriptHistoryEntry,
    ScriptListItem,
)
from gristmill.scripts import deployment, versions
from gristmill.scripts.hashes import format_hash
from gristmill.validation import MAX_PER_PAGE

__all__ = ["router"]

router = APIRouter(
    prefix="/w/{workspace}/scripts", tags=["scripts"], route_class=AuthenticatedRoute
)


def _script(row: dict[str, Any]) -> Script:
    return Script(
        workspace_id=row["workspace_id"],
        hash=format_hash(row["hash"]),
        path=row["path"],
        parent_hashes=[format_hash(h) for h in row["parent_hashes"]] or None,
        summary=row["summary"],
        description=row["description"],
        content=row["content"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        archived=row["archived"],
        deleted=row["deleted"],
        schema=row["schema"],
        lock=row["lock"],
        lock_error_logs=row["lock_error_logs"],
        language=row["language"],
        kind=row["kind"],
        tag=row["tag"],
        timeout=row["timeout"],
        priority=row["priority"],
        envs=row["envs"],
        deployment_message=row["deployment_message"],
        extra_perms=row["extra_perms"],
    )


@router.post("/create", status_code=201, response_class=PlainTextResponse)
async def create_script(
    body: NewScript, access: AccessDep, platform: PlatformDep, actor: ActorDep
) -> str:
    """Save a new version of the script at ``path``; returns its hash.

    The schema is inferred from ``main``'s parameters when the request carries none. A path
    that already has a live version needs ``parent_hash`` set to that version's hash.
    Writing an existing path needs write access to it (403), a new path the right to create
    there; a path ``f/<folder>/...`` needs the folder to exist (400). Operators never write.
    """
    workspace = access.workspace_id
    draft = versions.VersionDraft(
        path=body.path,
        content=body.content,
        language=body.language,
        parent_hash=body.parent_hash,
        summary=body.summary,
        description=body.description,
        schema=body.schema_,
        kind=body.kind,
        tag=body.tag,
        lock=body.lock,
        timeout=body.timeout,
        priority=body.priority,
        envs=body.envs,
        deployment_message=body.deployment_message,
    )
    author = versions.Author(actor.username, actor.email, actor.permissioned_as)
    new_hash = await versions.save_version(
        platform.db,
        platform.require_registry(),
        workspace_id=workspace,
        author=author,
        draft=draft,
        access=access,
        limits=platform.input_limits,
    )
    platform.runs.forget_script(workspace, body.path)
    return format_hash(new_hash)


@router.get("/get/p/{path:path}")
async def get_script_by_path(path: str, access: AccessDep, platform: PlatformDep) -> Script:
    """The newest version at ``path``."""
    return _script(await versions.fetch_by_path(platform.db, access.workspace_id, path, access))


@router.get("/get/h/{hash}")
async def get_script_by_hash(hash: str, access: AccessDep, platform: PlatformDep) -> Script:
    """One exact version."""
    return _script(await versions.fetch_by_hash(platform.db, access.workspace_id, hash, access))


@router.get("/deployment_status/h/{hash}")
async def deployment_status(
    hash: str, access: AccessDep, platform: PlatformDep
) -> DeploymentStatus:
    """Whether a version is ready to run: its lock, or why locking failed, and its
    dependency job. ``status`` is ``deployed``, ``locking`` or ``failed``."""
    row = await versions.fetch_by_hash(platform.db, access.workspace_id, hash, access)
    status = await deployment.deployment_status(platform.db, access.workspace_id, row)
    return DeploymentStatus(
        lock=status.lock,
        lock_error_logs=status.lock_error_logs,
        job_id=str(status.job_id) if status.job_id else None,
        status=status.status.value,
    )


@router.get("/raw/p/{path:path}", response_class=PlainTextResponse)
async def raw_script_by_path(path: str, access: AccessDep, platform: PlatformDep) -> str:
    """The source of the newest version at ``path``."""
    path = re.sub(r"\.(py|ts|go|sh|sql)$", "", path)
    return (await versions.fetch_by_path(platform.db, access.workspace_id, path, access))["content"]


@router.get("/raw/h/{hash}", response_class=PlainTextResponse)
async def raw_script_by_hash(hash: str, access: AccessDep, platform: PlatformDep) -> str:
    """The source of one exact version."""
    return (await versions.fetch_by_hash(platform.db, access.workspace_id, hash, access))["content"]


@router.get("/exists/p/{path:path}")
async def script_exists(path: str, access: AccessDep, platform: PlatformDep) -> bool:
    """Whether a version exists at ``path`` that the caller may read (``false`` for one they
    may not: reads never tell which paths exist)."""
    return await versions.version_exists(platform.db, access.workspace_id, path, access)


@router.get("/history/p/{path:path}")
async def script_history(
    path: str, access: AccessDep, platform: PlatformDep
) -> list[ScriptHistoryEntry]:
    """Every version at ``path``, newest first."""
    entries = await versions.history(platform.db, access.workspace_id, path, access)
    return [
        ScriptHistoryEntry(
            script_hash=format_hash(e.hash),
            deployment_msg=e.deployment_message,
            created_at=e.created_at,
            created_by=e.created_by,
        )
        for e in entries
    ]


@router.get("/list")
async def list_scripts(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
    path_start: str | None = None,
    path_exact: str | None = None,
    created_by: str | None = None,
    show_archived: bool = False,
    language: str | None = None,
) -> list[ScriptListItem]:
    """The newest version of each script path the caller may read."""
    query = versions.ScriptQuery(
        page=page,
        per_page=per_page,
        path_start=path_start,
        path_exact=path_exact,
        created_by=created_by,
        show_archived=show_archived,
        language=language,
    )
    rows = await versions.list_versions(platform.db, access.workspace_id, query, access)
    return [
        ScriptListItem(
            hash=format_hash(row["hash"]),
            path=row["path"],
            summary=row["summary"],
            description=row["description"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            archived=row["archived"],
            language=row["language"],
            kind=row["kind"],
            tag=row["tag"],
            has_deploy_errors=row["has_deploy_errors"],
        )
        for row in rows
    ]


@router.get("/list_paths")
async def list_script_paths(access: AccessDep, platform: PlatformDep) -> list[str]:
    """The paths of the live scripts the caller may read, sorted."""
    return await versions.list_paths(platform.db, access.workspace_id, access)


@router.post("/archive/p/{path:path}", response_class=PlainTextResponse)
async def archive_script_by_path(path: str, access: AccessDep, platform: PlatformDep) -> str:
    """Archive every version at ``path``: it no longer runs by path (needs write access)."""
    await versions.archive_by_path(platform.db, access, path)
    platform.runs.forget_script(access.workspace_id, path)
    return path


@router.post("/archive/h/{hash}", response_class=PlainTextResponse)
async def archive_script_by_hash(hash: str, access: AccessDep, platform: PlatformDep) -> str:
    """Archive one version (needs write access to its path)."""
    path = await versions.archive_by_hash(platform.db, access, hash)
    platform.runs.forget_script(access.workspace_id, path)
    return hash


@router.post("/delete/h/{hash}", response_class=PlainTextResponse)
async def delete_script_by_hash(hash: str, access: AccessDep, platform: PlatformDep) -> str:
    """Delete one version: its row stays, without its source (needs write access)."""
    path = await versions.delete_by_hash(platform.db, access, hash)
    platform.runs.forget_script(access.workspace_id, path)
    return hash


@router.post("/delete/p/{path:path}", response_class=PlainTextResponse)
async def delete_script_by_path(path: str, access: AccessDep, platform: PlatformDep) -> str:
    """Delete every version at ``path`` (needs write access)."""
    await versions.delete_by_path(platform.db, access, path)
    platform.runs.forget_script(access.workspace_id, path)
    return path
