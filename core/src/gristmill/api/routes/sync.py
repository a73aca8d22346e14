"""Windmill's workspace tarball (``wmill sync pull`` downloads it): every item the caller may
read, one JSON file each, as a zip or tar archive (:mod:`gristmill.sync`)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from gristmill.api.deps import AccessDep, AuthenticatedRoute, PlatformDep
from gristmill.errors import BadInput
from gristmill.sync.archive import ArchiveOptions, workspace_entries, write_archive

__all__ = ["router"]

router = APIRouter(
    prefix="/w/{workspace}/workspaces", tags=["sync"], route_class=AuthenticatedRoute
)

_MEDIA = {"zip": "application/zip", "tar": "application/x-tar"}


@router.get(
    "/tarball",
    response_class=Response,
    responses={
        200: {
            "description": "The archive: `f/...` and `u/...` item files, JSON (Windmill's layout).",
            "content": {
                m: {"schema": {"type": "string", "format": "binary"}} for m in _MEDIA.values()
            },
        }
    },
)
async def tarball(
    access: AccessDep,
    platform: PlatformDep,
    archive_type: str = "tar",
    plain_secret: bool = Query(default=False, description="Secrets decrypted (audited)."),
    plain_secrets: bool = Query(default=False, description="Windmill's other spelling."),
    skip_variables: bool = False,
    skip_secrets: bool = False,
    skip_resources: bool = False,
    skip_resource_types: bool = False,
    include_schedules: bool = False,
    include_triggers: bool = False,
) -> Response:
    """Every script, flow, folder, resource, resource type and variable the caller may read,
    and with the flags its schedules and triggers. Secrets are their ciphertext, which only
    this workspace opens, unless ``plain_secret``. The other parameters the CLI sends (users,
    groups, settings, the key, apps' options) are accepted and ignored: Gristmill exports no
    such items."""
    if archive_type not in _MEDIA:
        # The CLI falls back from zip to tar on this exact message (Windmill's wording).
        raise BadInput(f"Invalid Archive Type {archive_type}")
    kind: Literal["zip", "tar"] = "zip" if archive_type == "zip" else "tar"
    options = ArchiveOptions(
        archive_type=kind,
        plain_secrets=plain_secret or plain_secrets,
        skip_variables=skip_variables,
        skip_secrets=skip_secrets,
        skip_resources=skip_resources,
        skip_resource_types=skip_resource_types,
        include_schedules=include_schedules,
        include_triggers=include_triggers,
    )
    entries = await workspace_entries(
        platform.triggers, platform.trigger_kinds or [], access, options
    )
    return Response(
        content=write_archive(entries, kind),
        media_type=_MEDIA[kind],
        headers={
            "Content-Disposition": f'attachment; filename="windmill-{access.workspace_id}.{kind}"'
        },
    )
