"""Variables, plain and secret: ``/api/w/{workspace}/variables/...`` (Windmill's paths)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import PlainTextResponse

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.variables import (
    ContextualVariable,
    CreateVariable,
    EditVariable,
    ListableVariable,
)
from gristmill.validation import MAX_PER_PAGE
from gristmill.workspace import variables
from gristmill.workspace.variables import NewVariable, Variable, VariableEdit

__all__ = ["router"]

router = APIRouter(tags=["variables"], route_class=AuthenticatedRoute)

_BASE = "/w/{workspace}/variables"


def _listable(v: Variable) -> ListableVariable:
    return ListableVariable(
        workspace_id=v.workspace_id,
        path=v.path,
        value=v.value,
        is_secret=v.is_secret,
        description=v.description,
        extra_perms=v.extra_perms,
        account=v.account,
        is_oauth=v.is_oauth,
        is_expired=False if v.is_oauth else None,
    )


@router.get(f"{_BASE}/list")
async def list_variables(
    access: AccessDep,
    platform: PlatformDep,
    path_start: str | None = None,
    page: Page = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE,
) -> list[ListableVariable]:
    """The variables the caller may see, by path; secrets with ``value: null``."""
    found = await variables.list_variables(
        platform.db, access, path_start=path_start, page=page, per_page=per_page
    )
    return [_listable(v) for v in found]


@router.get(f"{_BASE}/list_contextual")
async def list_contextual_variables(
    access: AccessDep, platform: PlatformDep
) -> list[ContextualVariable]:
    """The ``WM_*`` variables every job gets in its environment."""
    return [
        ContextualVariable(
            name=c.name, value=c.value, description=c.description, is_custom=c.is_custom
        )
        for c in variables.contextual_variables(
            access,
            base_url=platform.settings.public_url,
            internal_url=platform.settings.internal_url,
        )
    ]


@router.get(f"{_BASE}/get/{{path:path}}")
async def get_variable(
    path: str,
    access: AccessDep,
    platform: PlatformDep,
    decrypt_secret: bool = False,
    include_encrypted: bool = False,
) -> ListableVariable:
    """One variable. A secret's ``value`` is ``null`` unless ``decrypt_secret=true`` (an
    audited read, masked in the calling job's logs); ``include_encrypted`` is accepted and
    ignored (ciphertext never leaves the server)."""
    del include_encrypted
    found = await variables.get_variable(
        platform.db, platform.require_secrets(), access, path, decrypt_secret=decrypt_secret
    )
    return _listable(found)


@router.get(f"{_BASE}/get_value/{{path:path}}")
async def get_variable_value(path: str, access: AccessDep, platform: PlatformDep) -> str:
    """The value, as a JSON string (what ``wmill.get_variable`` parses). Reading a secret is
    audited (``variables.decrypt_secret``); a job's read is masked in its logs."""
    return await variables.get_variable_value(platform.db, platform.require_secrets(), access, path)


@router.get(f"{_BASE}/exists/{{path:path}}")
async def exists_variable(path: str, access: AccessDep, platform: PlatformDep) -> bool:
    """Whether a variable the caller may see is at ``path`` (JSON ``true``/``false``)."""
    return await variables.variable_exists(platform.db, access, path)


@router.post(f"{_BASE}/create", status_code=201, response_class=PlainTextResponse)
async def create_variable(
    body: CreateVariable,
    access: AccessDep,
    platform: PlatformDep,
    already_encrypted: bool = False,
) -> str:
    """Create a variable; answers its path. A secret is stored encrypted; with
    ``already_encrypted`` the value is ciphertext from ``POST .../encrypt``."""
    return await variables.create_variable(
        platform.db,
        platform.require_secrets(),
        access,
        NewVariable(
            path=body.path,
            value=body.value,
            is_secret=body.is_secret,
            description=body.description,
            account=body.account,
            is_oauth=body.is_oauth,
        ),
        already_encrypted=already_encrypted,
    )


@router.post(f"{_BASE}/update/{{path:path}}", response_class=PlainTextResponse)
async def update_variable(
    path: str,
    body: EditVariable,
    access: AccessDep,
    platform: PlatformDep,
    already_encrypted: bool = False,
) -> str:
    """Change a variable (fields given only); a new ``path`` renames it."""
    new_path = await variables.update_variable(
        platform.db,
        platform.require_secrets(),
        access,
        path,
        VariableEdit(
            path=body.path, value=body.value, is_secret=body.is_secret, description=body.description
        ),
        already_encrypted=already_encrypted,
    )
    return f"variable {path} updated" + (f" (now at {new_path})" if new_path != path else "")


@router.delete(f"{_BASE}/delete/{{path:path}}", response_class=PlainTextResponse)
async def delete_variable(path: str, access: AccessDep, platform: PlatformDep) -> str:
    await variables.delete_variable(platform.db, access, path)
    return f"variable {path} deleted"


@router.post(f"{_BASE}/encrypt", response_class=PlainTextResponse)
async def encrypt_value(
    access: AccessDep, platform: PlatformDep, value: Annotated[str, Body()]
) -> str:
    """``value`` (a JSON string) encrypted with the workspace's key, for ``create`` or
    ``update`` with ``already_encrypted=true``."""
    return await variables.encrypt_value(platform.db, platform.require_secrets(), access, value)
