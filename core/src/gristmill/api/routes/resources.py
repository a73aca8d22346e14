"""Resources and resource types."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.resources import (
    CreateResource,
    EditResource,
    EditResourceType,
    EditResourceValue,
    NewResourceType,
    Resource,
    ResourceType,
)
from gristmill.errors import Conflict
from gristmill.validation import MAX_PER_PAGE
from gristmill.workspace import resource_types as types
from gristmill.workspace import resources

__all__ = ["router"]

router = APIRouter(tags=["resources"], route_class=AuthenticatedRoute)

_TYPES = "/w/{workspace}/resources/type"
_RES = "/w/{workspace}/resources"


def _type(workspace_id: str, row: types.ResourceTypeRow) -> ResourceType:
    return ResourceType(
        workspace_id=workspace_id,
        name=row.name,
        schema=row.schema,
        description=row.description,
        created_by=row.created_by,
        edited_at=row.edited_at,
        format_extension=row.format_extension,
        builtin=row.builtin,
    )


def _resource(workspace_id: str, row: resources.ResourceRow) -> Resource:
    return Resource(
        workspace_id=workspace_id,
        path=row.path,
        description=row.description,
        resource_type=row.resource_type,
        value=row.value,
        extra_perms=row.extra_perms,
        created_by=row.created_by,
        edited_at=row.edited_at,
    )


# -- resource types -----------------------------------------------------------------------------


@router.get(f"{_TYPES}/list")
async def list_resource_types(access: AccessDep, platform: PlatformDep) -> list[ResourceType]:
    """The built-in types and the workspace's own."""
    rows = await types.list_types(platform.db, access.workspace_id)
    return [_type(access.workspace_id, row) for row in rows]


@router.get(f"{_TYPES}/listnames")
async def list_resource_type_names(access: AccessDep, platform: PlatformDep) -> list[str]:
    return [row.name for row in await types.list_types(platform.db, access.workspace_id)]


@router.get(f"{_TYPES}/get/{{name}}")
async def get_resource_type(name: str, access: AccessDep, platform: PlatformDep) -> ResourceType:
    row = await types.read_type(platform.db, access.workspace_id, name)
    return _type(access.workspace_id, row)


@router.get(f"{_TYPES}/exists/{{name}}")
async def resource_type_exists(name: str, access: AccessDep, platform: PlatformDep) -> bool:
    return await types.type_exists(platform.db, access.workspace_id, name)


@router.post(f"{_TYPES}/create", status_code=201, response_class=PlainTextResponse)
async def create_resource_type(
    body: NewResourceType, access: AccessDep, platform: PlatformDep
) -> str:
    """A new type of the workspace; its schema must be a valid JSON schema (draft 7)."""
    await types.create_type(
        platform.db,
        access,
        name=body.name,
        schema=body.schema_,
        description=body.description,
        format_extension=body.format_extension,
    )
    return body.name


@router.post(f"{_TYPES}/update/{{name}}", response_class=PlainTextResponse)
async def update_resource_type(
    name: str, body: EditResourceType, access: AccessDep, platform: PlatformDep
) -> str:
    """Change a workspace type's schema and/or description (built-in types are read-only)."""
    await types.update_type(
        platform.db,
        access,
        name,
        schema=body.schema_,
        set_schema="schema_" in body.model_fields_set,
        description=body.description,
    )
    return f"resource type {name} updated"


@router.delete(f"{_TYPES}/delete/{{name}}", response_class=PlainTextResponse)
async def delete_resource_type(name: str, access: AccessDep, platform: PlatformDep) -> str:
    await types.delete_type(platform.db, access, name)
    return f"resource type {name} deleted"


@router.get(f"{_RES}/file_resource_type_to_file_ext_map")
async def file_resource_type_to_file_ext_map(
    access: AccessDep, platform: PlatformDep
) -> dict[str, str]:
    """The file extension of each type that stores a file (none built in); the CLI asks."""
    return await types.file_extensions(platform.db, access.workspace_id)


# -- resources ----------------------------------------------------------------------------------


@router.get(f"{_RES}/list")
async def list_resources(
    access: AccessDep,
    platform: PlatformDep,
    page: Page = 1,
    per_page: int = Query(100, ge=1, le=MAX_PER_PAGE),
    resource_type: str | None = None,
    path_start: str | None = None,
) -> list[Resource]:
    """The resources visible to the caller; ``resource_type`` may name several, comma-separated."""
    rows = await resources.list_resources(
        platform.db,
        access,
        resource_type=resource_type,
        path_start=path_start,
        page=page,
        per_page=per_page,
    )
    return [_resource(access.workspace_id, row) for row in rows]


@router.get(f"{_RES}/get/{{path:path}}")
async def get_resource(path: str, access: AccessDep, platform: PlatformDep) -> Resource:
    return _resource(access.workspace_id, await resources.get_resource(platform.db, access, path))


@router.get(f"{_RES}/exists/{{path:path}}")
async def resource_exists(path: str, access: AccessDep, platform: PlatformDep) -> bool:
    return await resources.resource_exists(platform.db, access, path)


@router.get(f"{_RES}/get_value/{{path:path}}")
async def get_resource_value(path: str, access: AccessDep, platform: PlatformDep) -> Any:
    """The value as stored (references not expanded)."""
    return (await resources.get_resource(platform.db, access, path)).value


@router.get(f"{_RES}/get_value_interpolated/{{path:path}}")
async def get_resource_value_interpolated(
    path: str, access: AccessDep, platform: PlatformDep
) -> Any:
    """The value with its ``$var:``/``$res:`` references replaced by what they name."""
    return await resources.get_value_interpolated(
        platform.db, platform.require_secrets(), access, path
    )


@router.post(f"{_RES}/create", status_code=201, response_class=PlainTextResponse)
async def create_resource(
    body: CreateResource,
    access: AccessDep,
    platform: PlatformDep,
    update_if_exists: bool = False,
) -> str:
    """A new resource; its value is checked against its type's schema."""
    try:
        await resources.create_resource(
            platform.db,
            access,
            path=body.path,
            value=body.value,
            resource_type=body.resource_type,
            description=body.description,
        )
    except Conflict:
        if not update_if_exists:
            raise
        edit = resources.ResourceEdit(
            value=body.value,
            set_value=True,
            description=body.description,
            resource_type=body.resource_type,
        )
        await resources.update_resource(platform.db, access, body.path, edit)
    return body.path


@router.post(f"{_RES}/update/{{path:path}}", response_class=PlainTextResponse)
async def update_resource(
    path: str, body: EditResource, access: AccessDep, platform: PlatformDep
) -> str:
    """Change the fields sent; a new ``path`` moves the resource."""
    edit = resources.ResourceEdit(
        path=body.path,
        value=body.value,
        set_value="value" in body.model_fields_set,
        description=body.description,
        resource_type=body.resource_type,
    )
    await resources.update_resource(platform.db, access, path, edit)
    return body.path or path


@router.post(f"{_RES}/update_value/{{path:path}}", response_class=PlainTextResponse)
async def update_resource_value(
    path: str, body: EditResourceValue, access: AccessDep, platform: PlatformDep
) -> str:
    await resources.update_value(platform.db, access, path, body.value)
    return path


@router.delete(f"{_RES}/delete/{{path:path}}", response_class=PlainTextResponse)
async def delete_resource(path: str, access: AccessDep, platform: PlatformDep) -> str:
    await resources.delete_resource(platform.db, access, path)
    return path
