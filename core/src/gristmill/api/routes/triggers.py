"""Windmill's CRUD routes of a trigger kind, made for each registered kind:
``/api/w/{workspace}/{kind}_triggers/create|update/{path}|get/{path}|exists/{path}|list|
delete/{path}|setenabled/{path}|setmode/{path}``.

The payload models are made per kind too: the common fields
(:mod:`gristmill.api.schemas.triggers`) plus the kind's ``config_model``, flat as Windmill
sends them.
"""

# No `from __future__ import annotations` here: the endpoints are made in a function and
# their annotations name that function's local models, which FastAPI must see as objects.

import dataclasses
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ValidationError, create_model

from gristmill.api.deps import AccessDep, AuthenticatedRoute, Page, PlatformDep
from gristmill.api.schemas.triggers import NewTriggerCommon, SetEnabled, SetMode, TriggerCommon
from gristmill.errors import BadInput
from gristmill.triggers import store
from gristmill.triggers.kinds import TriggerKind, TriggerRow
from gristmill.validation import MAX_PER_PAGE

__all__ = ["trigger_router"]


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def trigger_router(kind: TriggerKind) -> APIRouter:
    """The CRUD router of ``kind``."""
    base = _title(kind.name)
    config_fields = set(kind.config_model.model_fields)
    new_model: type[BaseModel] = create_model(
        f"New{base}Trigger", __base__=(NewTriggerCommon, kind.config_model)
    )
    out_model: type[BaseModel] = create_model(
        f"{base}Trigger", __base__=(TriggerCommon, kind.config_model)
    )
    tag = f"{kind.name}_triggers"
    router = APIRouter(prefix=f"/w/{{workspace}}/{tag}", tags=[tag], route_class=AuthenticatedRoute)

    def split(body: BaseModel) -> tuple[store.TriggerSave, BaseModel]:
        common: NewTriggerCommon = body  # type: ignore[assignment]
        save = store.TriggerSave(
            path=common.path,
            script_path=common.script_path,
            is_flow=common.is_flow,
            summary=common.summary,
            description=common.description,
            enabled=common.is_enabled,
        )
        values = {name: getattr(body, name) for name in config_fields}
        return save, kind.config_model.model_validate(values)

    def out(row: TriggerRow) -> Any:
        try:
            config = kind.config_model.model_validate(row.config)
        except ValidationError as exc:  # saved by an older version of the kind
            raise BadInput(
                f"{kind.title} {row.path} has a configuration this version cannot read: {exc}"
            ) from None
        # The stored row's fields are the answer's common fields (``kind`` is the route's
        # own; ``config`` is spread flat), plus the derived ``enabled``.
        common = dataclasses.asdict(row)
        del common["kind"], common["config"]
        return out_model.model_validate({**config.model_dump(), **common, "enabled": row.enabled})

    @router.post(
        "/create",
        status_code=201,
        response_class=PlainTextResponse,
        name=f"create_{kind.name}_trigger",
    )
    async def create(body: new_model, access: AccessDep, platform: PlatformDep) -> str:  # type: ignore[valid-type]
        save, config = split(body)
        await store.create_trigger(platform.triggers, access, kind, save, config)
        return save.path

    @router.post(
        "/update/{path:path}", response_class=PlainTextResponse, name=f"update_{kind.name}_trigger"
    )
    async def update(path: str, body: new_model, access: AccessDep, platform: PlatformDep) -> str:  # type: ignore[valid-type]
        save, config = split(body)
        await store.update_trigger(platform.triggers, access, kind, path, save, config)
        return save.path

    @router.get("/get/{path:path}", name=f"get_{kind.name}_trigger")
    async def get(path: str, access: AccessDep, platform: PlatformDep) -> out_model:  # type: ignore[valid-type]
        return out(await store.get_trigger(platform.triggers, access, kind, path))

    @router.get("/exists/{path:path}", name=f"exists_{kind.name}_trigger")
    async def exists(path: str, access: AccessDep, platform: PlatformDep) -> bool:
        return await store.trigger_exists(platform.triggers, access, kind, path)

    @router.get("/list", name=f"list_{kind.name}_triggers")
    async def list_(
        access: AccessDep,
        platform: PlatformDep,
        page: Page = 1,
        per_page: int = Query(default=100, ge=1, le=MAX_PER_PAGE),
        path_start: str | None = None,
        path: str | None = Query(default=None, description="Only the triggers of this runnable."),
        is_flow: bool | None = None,
    ) -> list[out_model]:  # type: ignore[valid-type]
        rows = await store.list_triggers(
            platform.triggers,
            access,
            kind,
            path_start=path_start,
            script_path=path,
            is_flow=is_flow,
            page=page,
            per_page=per_page,
        )
        return [out(row) for row in rows]

    @router.delete(
        "/delete/{path:path}", response_class=PlainTextResponse, name=f"delete_{kind.name}_trigger"
    )
    async def delete(path: str, access: AccessDep, platform: PlatformDep) -> str:
        await store.delete_trigger(platform.triggers, access, kind, path)
        return f"{kind.title} {path} deleted"

    @router.post(
        "/setenabled/{path:path}",
        response_class=PlainTextResponse,
        name=f"set_{kind.name}_trigger_enabled",
    )
    async def set_enabled(
        path: str, body: SetEnabled, access: AccessDep, platform: PlatformDep
    ) -> str:
        await store.set_trigger_mode(platform.triggers, access, kind, path, body.enabled)
        return f"{kind.title} {path} {'enabled' if body.enabled else 'disabled'}"

    @router.post(
        "/setmode/{path:path}",
        response_class=PlainTextResponse,
        name=f"set_{kind.name}_trigger_mode",
    )
    async def set_mode(path: str, body: SetMode, access: AccessDep, platform: PlatformDep) -> str:
        await store.set_trigger_mode(platform.triggers, access, kind, path, body.mode == "enabled")
        return f"{kind.title} {path} {body.mode}"

    return router
