"""Triggers as stored items of a workspace: create, update, read, list, enable, delete.

Common to every kind in the ``trigger`` table (``kind`` tells them apart). A save is checked
whole before anything is written: the path, the runnable (it must exist and be readable by
the one saving, who becomes the trigger's owner), the kind's own fields (already validated
by its model) and the kind's :meth:`~gristmill.triggers.kinds.TriggerKind.check`. Each change
notifies ``gristmill_triggers`` in its transaction, so every server process sees it when it
commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, Conflict, NotFound
from gristmill.scripts.paths import check_path
from gristmill.triggers.kinds import TriggerDraft, TriggerKind, TriggerRow, TriggerServices
from gristmill.triggers.runs import runnable_row
from gristmill.validation import check_no_nul, check_text_fields, short
from gristmill.workspace.folders import require_folder_of

__all__ = [
    "TriggerSave",
    "create_trigger",
    "delete_trigger",
    "enabled_triggers",
    "get_trigger",
    "list_triggers",
    "set_trigger_error",
    "set_trigger_mode",
    "trigger_exists",
    "update_trigger",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerSave:
    """The fields of a create or update common to every kind."""

    path: str
    script_path: str
    is_flow: bool
    summary: str | None
    description: str | None
    enabled: bool

    def __post_init__(self) -> None:
        check_text_fields(self)
        check_path(self.path)
        check_path(self.script_path, field="script_path")


def _not_found(kind: TriggerKind, path: str) -> NotFound:
    return NotFound(f"{kind.title} not found at path {short(path)}")


async def _fetch(
    conn: psycopg.AsyncConnection, query: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q[query], params)
    return await cur.fetchone()


async def _visible(
    conn: psycopg.AsyncConnection,
    access: Access,
    kind: TriggerKind,
    path: str,
    *,
    lock: bool = False,
) -> TriggerRow:
    """The trigger at ``path`` if the caller may read it, else 404."""
    check_path(path)
    row = await _fetch(
        conn,
        "trig_get_for_update" if lock else "trig_get",
        {"workspace_id": access.workspace_id, "kind": kind.name, "path": path},
    )
    if row is None or not access.can_read(path, row["extra_perms"]):
        raise _not_found(kind, path)
    return TriggerRow.from_db(row)


async def _check_runnable(conn: psycopg.AsyncConnection, access: Access, save: TriggerSave) -> None:
    """The script or flow the trigger starts must exist and be readable by the one saving
    (the trigger will run it as them): 400 naming it otherwise."""
    what = "flow" if save.is_flow else "script"
    row = await runnable_row(conn, access.workspace_id, save.script_path, is_flow=save.is_flow)
    readable = row is not None and access.can_read(save.script_path, row.get("extra_perms"))
    if not readable or (save.is_flow and row is not None and row.get("archived")):
        hint = "is_flow: false for a script" if save.is_flow else "is_flow: true for a flow"
        raise BadInput(
            f"script_path: no {what} {save.script_path!r} that you can run in workspace "
            f"'{access.workspace_id}' (save it first, or set {hint})"
        )


def _taken(kind: TriggerKind, path: str) -> Conflict:
    return Conflict(
        f"{kind.title} {path} already exists (update it with POST "
        f"/{kind.name}_triggers/update/{path})"
    )


async def _notify(conn: psycopg.AsyncConnection, kind: TriggerKind) -> None:
    await conn.execute(Q["trig_notify"], {"kind": kind.name})


def _draft(
    access: Access, save: TriggerSave, config: Any, previous_path: str | None = None
) -> TriggerDraft:
    return TriggerDraft(
        workspace_id=access.workspace_id,
        path=save.path,
        script_path=save.script_path,
        is_flow=save.is_flow,
        config=config,
        enabled=save.enabled,
        previous_path=previous_path,
    )


def _params(access: Access, kind: TriggerKind, save: TriggerSave, config: Any) -> dict[str, Any]:
    return {
        "workspace_id": access.workspace_id,
        "kind": kind.name,
        "script_path": save.script_path,
        "is_flow": save.is_flow,
        "summary": save.summary,
        "description": save.description,
        "config": Jsonb(config.model_dump(mode="json")),
        "mode": "enabled" if save.enabled else "disabled",
        "edited_by": access.username,
        "email": access.actor.email,
    }


async def create_trigger(
    services: TriggerServices,
    access: Access,
    kind: TriggerKind,
    save: TriggerSave,
    config: Any,
) -> TriggerRow:
    """A new trigger of ``kind`` at ``save.path``; a path taken already is a 400."""
    access.require_not_operator()
    async with services.pool.connection() as conn:
        await require_folder_of(conn, access.workspace_id, save.path)
        access.require_create(save.path)
        await _check_runnable(conn, access, save)
        # Before the kind's check, which may create things outside (a replication slot).
        taken = {"workspace_id": access.workspace_id, "kind": kind.name, "path": save.path}
        if await _fetch(conn, "trig_get", taken) is not None:
            raise _taken(kind, save.path)
    await kind.check(services, _draft(access, save, config), access)
    async with services.pool.connection() as conn, conn.transaction():
        row = await _fetch(
            conn, "trig_insert", {**_params(access, kind, save, config), "path": save.path}
        )
        if row is None:
            raise _taken(kind, save.path)
        await record_access(
            conn, access, f"{kind.name}_triggers.create", ActionKind.CREATE, save.path
        )
        await _notify(conn, kind)
    return TriggerRow.from_db(row)


async def update_trigger(
    services: TriggerServices,
    access: Access,
    kind: TriggerKind,
    path: str,
    save: TriggerSave,
    config: Any,
) -> TriggerRow:
    """Replace the trigger at ``path`` (``save.path`` may move it); the one saving becomes
    its owner, as in Windmill."""
    access.require_not_operator()
    async with services.pool.connection() as conn:
        current = await _visible(conn, access, kind, path)
        access.require_write(path, current.extra_perms)
        if save.path != path:
            await require_folder_of(conn, access.workspace_id, save.path)
            access.require_create(save.path)
        await _check_runnable(conn, access, save)
    await kind.check(services, _draft(access, save, config, path), access)
    async with services.pool.connection() as conn, conn.transaction():
        try:
            row = await _fetch(
                conn,
                "trig_update",
                {**_params(access, kind, save, config), "path": path, "new_path": save.path},
            )
        except psycopg.errors.UniqueViolation:
            raise Conflict(
                f"{kind.title} {save.path} already exists: choose another path"
            ) from None
        if row is None:
            raise _not_found(kind, path)
        await record_access(conn, access, f"{kind.name}_triggers.update", ActionKind.UPDATE, path)
        await _notify(conn, kind)
    return TriggerRow.from_db(row)


async def set_trigger_mode(
    services: TriggerServices, access: Access, kind: TriggerKind, path: str, enabled: bool
) -> TriggerRow:
    """Enable or disable a trigger; enabling checks it again (the kind's check)."""
    access.require_not_operator()
    async with services.pool.connection() as conn:
        current = await _visible(conn, access, kind, path)
        access.require_write(path, current.extra_perms)
    if enabled:
        config = kind.config_model.model_validate(current.config)
        save = TriggerSave(
            path=current.path,
            script_path=current.script_path,
            is_flow=current.is_flow,
            summary=current.summary,
            description=current.description,
            enabled=True,
        )
        await kind.check(services, _draft(access, save, config, path), access)
    async with services.pool.connection() as conn, conn.transaction():
        row = await _fetch(
            conn,
            "trig_set_mode",
            {
                "workspace_id": access.workspace_id,
                "kind": kind.name,
                "path": path,
                "mode": "enabled" if enabled else "disabled",
                "edited_by": access.username,
            },
        )
        if row is None:
            raise _not_found(kind, path)
        await record_access(
            conn,
            access,
            f"{kind.name}_triggers.setmode",
            ActionKind.UPDATE,
            path,
            parameters={"enabled": enabled},
        )
        await _notify(conn, kind)
    return TriggerRow.from_db(row)


async def get_trigger(
    services: TriggerServices, access: Access, kind: TriggerKind, path: str
) -> TriggerRow:
    async with services.pool.connection() as conn:
        return await _visible(conn, access, kind, path)


async def trigger_exists(
    services: TriggerServices, access: Access, kind: TriggerKind, path: str
) -> bool:
    try:
        await get_trigger(services, access, kind, path)
    except NotFound:
        return False
    return True


async def list_triggers(
    services: TriggerServices,
    access: Access,
    kind: TriggerKind,
    *,
    path_start: str | None = None,
    script_path: str | None = None,
    is_flow: bool | None = None,
    page: int = 1,
    per_page: int = 100,
) -> list[TriggerRow]:
    """The triggers of ``kind`` the caller may read, by path."""
    if page < 1 or per_page < 1:
        raise BadInput("page and per_page start at 1")
    check_no_nul("path_start", path_start)
    check_no_nul("path", script_path)
    async with services.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["trig_list"],
            {
                "workspace_id": access.workspace_id,
                "kind": kind.name,
                "path_start": like_prefix(path_start) if path_start else None,
                "script_path": script_path,
                "is_flow": is_flow,
                "limit": per_page,
                "offset": (page - 1) * per_page,
                **access.sql_params(),
            },
        )
        return [TriggerRow.from_db(r) for r in await cur.fetchall()]


async def delete_trigger(
    services: TriggerServices, access: Access, kind: TriggerKind, path: str
) -> None:
    access.require_not_operator()
    async with services.pool.connection() as conn, conn.transaction():
        current = await _visible(conn, access, kind, path, lock=True)
        access.require_write(path, current.extra_perms)
        await conn.execute(
            Q["trig_delete"], {"workspace_id": access.workspace_id, "kind": kind.name, "path": path}
        )
        await record_access(conn, access, f"{kind.name}_triggers.delete", ActionKind.DELETE, path)
        await _notify(conn, kind)
    try:
        await kind.forget(services, current, access)
    except Exception:
        log.exception("%s %s deleted, but releasing what it held failed", kind.title, path)


async def enabled_triggers(services: TriggerServices, kind_name: str) -> list[TriggerRow]:
    """What a server serves: the enabled triggers of one kind, in every workspace."""
    async with services.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["trig_enabled_of_kind"], {"kind": kind_name})
        return [TriggerRow.from_db(r) for r in await cur.fetchall()]


async def set_trigger_error(
    services: TriggerServices, trigger: TriggerRow, error: str | None
) -> None:
    """Record (or, with ``None``, clear) the error a trigger met while serving or listening:
    ``get`` and ``list`` show it, so a trigger never stops silently."""
    async with services.pool.connection() as conn:
        await conn.execute(
            Q["trig_set_error"],
            {
                "workspace_id": trigger.workspace_id,
                "kind": trigger.kind,
                "path": trigger.path,
                "error": error[:4000] if error is not None else None,
            },
        )
