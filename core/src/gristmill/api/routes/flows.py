"""Flows as stored objects: create, update, read, list, history, archive, delete. Flows
cannot run yet."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.flows import ArchiveFlow, Flow, FlowListItem, FlowVersion, NewFlow
from gristmill.flows import store
from gristmill.validation import MAX_PER_PAGE

__all__ = ["router"]

router = APIRouter(prefix="/w/{workspace}/flows", tags=["flows"], route_class=AuthenticatedRoute)


def _draft(body: NewFlow) -> store.FlowDraft:
    return store.FlowDraft(
        path=body.path,
        value=body.value,
        summary=body.summary,
        description=body.description,
        schema=body.schema_,
        tag=body.tag,
        ws_error_handler_muted=body.ws_error_handler_muted,
        dedicated_worker=body.dedicated_worker,
        visible_to_runner_only=body.visible_to_runner_only,
        timeout=body.timeout,
        priority=body.priority,
        deployment_message=body.deployment_message,
    )


def _metadata(row: store.FlowRow) -> dict[str, object]:
    return {
        "workspace_id": row.workspace_id,
        "path": row.path,
        "summary": row.summary,
        "description": row.description,
        "edited_by": row.edited_by,
        "edited_at": row.edited_at,
        "archived": row.archived,
        "extra_perms": row.extra_perms,
        "tag": row.tag,
        "ws_error_handler_muted": row.ws_error_handler_muted,
        "priority": row.priority,
        "dedicated_worker": row.dedicated_worker,
        "timeout": row.timeout,
        "visible_to_runner_only": row.visible_to_runner_only,
        "version_id": row.version_id,
    }


def _flow(row: store.FlowRow) -> Flow:
    return Flow.model_validate({**_metadata(row), "value": row.value or {}, "schema": row.schema})


def _save_checks(request: Request, platform: PlatformDep) -> dict[str, Any]:
    """What a save checks beyond the flow itself: the languages installed here, and whether
    the Windmill CLI's ``sync push`` sends it (then a sub-flow it names may come later in
    the same push: see docs/flows.md "Checked when saved")."""
    return {
        "languages": set(platform.require_registry().names()),
        "sync": request.headers.get("x-windmill-deploy-origin") == "sync",
    }


@router.post("/create", status_code=201, response_class=PlainTextResponse)
async def create_flow(
    body: NewFlow, request: Request, access: AccessDep, platform: PlatformDep
) -> str:
    """A new flow at ``path`` (its first version); answers the path. A path already taken
    is refused (400); a path ``f/<folder>/...`` needs its folder (400); creating needs the
    right to write there (403), which operators never have."""
    await store.create_flow(
        platform.db, access, _draft(body), platform.input_limits, **_save_checks(request, platform)
    )
    return body.path


@router.post("/update/{path:path}", response_class=PlainTextResponse)
async def update_flow(
    path: str, body: NewFlow, request: Request, access: AccessDep, platform: PlatformDep
) -> str:
    """Save a new version of the flow at ``path``; a ``path`` in the body other than the
    URL's moves the flow (and its history) there. Answers the flow's path."""
    await store.update_flow(
        platform.db,
        access,
        path,
        _draft(body),
        platform.input_limits,
        **_save_checks(request, platform),
    )
    return body.path


# Both before `/get/{path}`, whose catch-all path would take `v/<id>/...` (no flow path
# starts with `v/`).
@router.get("/get/v/{version}/p/{path:path}")
async def get_flow_version(
    version: int, path: str, access: AccessDep, platform: PlatformDep
) -> Flow:
    """One version of the flow at ``path``: its value and schema, with the flow's current
    summary, description and options."""
    return _flow(await store.get_version(platform.db, access, version, path))


@router.get("/get/v/{version}")
async def get_flow_version_by_id(version: int, access: AccessDep, platform: PlatformDep) -> Flow:
    """One version of a flow by its id alone (newer Windmill clients ask so)."""
    return _flow(await store.get_version(platform.db, access, version))


@router.get("/get/{path:path}")
async def get_flow_by_path(path: str, access: AccessDep, platform: PlatformDep) -> Flow:
    """The flow at ``path``, archived or not."""
    return _flow(await store.get_flow(platform.db, access, path))


@router.get("/exists/{path:path}")
async def flow_exists(path: str, access: AccessDep, platform: PlatformDep) -> bool:
    """Whether a flow the caller may read is at ``path`` (``false`` for one they may not:
    reads never tell which paths exist)."""
    return await store.flow_exists(platform.db, access, path)


@router.get("/history/p/{path:path}")
async def flow_history(path: str, access: AccessDep, platform: PlatformDep) -> list[FlowVersion]:
    """Every version of the flow at ``path``, newest first."""
    entries = await store.history(platform.db, access, path)
    return [
        FlowVersion(
            id=e.id,
            created_at=e.created_at,
            deployment_msg=e.deployment_msg,
            created_by=e.created_by,
        )
        for e in entries
    ]


@router.get("/list")
async def list_flows(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
    order_desc: bool = True,
    created_by: str | None = None,
    path_start: str | None = None,
    path_exact: str | None = None,
    show_archived: bool = False,
) -> list[FlowListItem]:
    """The flows the caller may read, without their value, most recently edited first:
    the live ones, or with ``show_archived`` only the archived ones (Windmill's filter).
    ``created_by`` is who saved the flow last."""
    query = store.FlowQuery(
        page=page,
        per_page=per_page,
        path_start=path_start,
        path_exact=path_exact,
        edited_by=created_by,
        show_archived=show_archived,
        order_desc=order_desc,
    )
    rows = await store.list_flows(platform.db, access, query)
    return [FlowListItem.model_validate(_metadata(row)) for row in rows]


@router.get("/list_paths")
async def list_flow_paths(access: AccessDep, platform: PlatformDep) -> list[str]:
    """The paths of the live flows the caller may read, sorted."""
    return await store.list_paths(platform.db, access)


@router.post("/archive/{path:path}", response_class=PlainTextResponse)
async def archive_flow_by_path(
    path: str, body: ArchiveFlow, access: AccessDep, platform: PlatformDep
) -> str:
    """Archive the flow at ``path`` (``{"archived": false}`` brings it back); needs write
    access."""
    await store.archive_flow(platform.db, access, path, body.archived)
    return f"Flow {path} {'archived' if body.archived else 'unarchived'}"


@router.delete("/delete/{path:path}", response_class=PlainTextResponse)
async def delete_flow_by_path(path: str, access: AccessDep, platform: PlatformDep) -> str:
    """Delete the flow at ``path`` and its history; needs write access."""
    await store.delete_flow(platform.db, access, path)
    return f"Flow {path} deleted"
