"""Schedules as stored objects (Windmill's ``schedules`` routes): create, update, enable,
read, list, delete, and the preview of fire times. Firing is in
:mod:`gristmill.triggers.ticker`.

Every operation goes through the caller's :class:`~gristmill.auth.permissions.Access`, as
flows do: a schedule the caller may not read answers as one that does not exist (404), a
write they may not do is 403, a path ``f/<folder>/...`` needs its folder, operators never
write, lists hold only what the caller may read. A save checks everything before writing:
the cron expression and timezone, that the script or flow exists and the saver may run it,
the arguments against its schema, the handlers, the retry; the saver becomes who the runs
act as (``permissioned_as``, ``email``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, Conflict, NotFound
from gristmill.flows.model import Retry
from gristmill.runtimes.schema import ArgumentError, validate_args
from gristmill.scripts.paths import check_path
from gristmill.triggers.cron import Cron, load_timezone, parse_cron
from gristmill.triggers.runs import runnable_row
from gristmill.validation import (
    INT4_MAX,
    InputLimits,
    check_int,
    check_json,
    check_page,
    check_text_fields,
    short,
)
from gristmill.workspace.folders import require_folder_of

__all__ = [
    "CRON_VERSIONS",
    "PREVIEW_COUNT",
    "HandlerRef",
    "ScheduleDraft",
    "ScheduleQuery",
    "create_schedule",
    "delete_schedule",
    "first_tick",
    "get_schedule",
    "list_schedules",
    "parse_handler",
    "preview",
    "recent_jobs",
    "schedule_exists",
    "set_enabled",
    "update_schedule",
]

#: Windmill's ``cron_version`` values: ``v2`` (croner, the default) and ``v1`` (its older
#: parser), both read with croner's syntax here.
CRON_VERSIONS = ("v1", "v2")
#: How many fire times a preview answers (Windmill's).
PREVIEW_COUNT = 5
#: The longest retry Gristmill accepts (attempts of each kind).
MAX_RETRY_ATTEMPTS = 1000
_HANDLER_FIELDS = ("on_failure", "on_recovery", "on_success")


@dataclass(frozen=True)
class HandlerRef:
    """A handler as Windmill names it: ``script/<path>`` or ``flow/<path>`` (a bare path is
    a script)."""

    is_flow: bool
    path: str


def parse_handler(field: str, value: str) -> HandlerRef:
    """:class:`BadInput` naming ``field`` unless ``value`` names a script or flow path."""
    kind, _, rest = value.partition("/")
    if kind in ("script", "flow"):
        check_path(rest, field=field)
        return HandlerRef(kind == "flow", rest)
    check_path(value, field=field)
    return HandlerRef(False, value)


@dataclass(frozen=True)
class ScheduleDraft:
    """A schedule as sent by Windmill's clients (``NewSchedule``; ``EditSchedule`` has the
    same fields but the path, runnable and enabled flag, which an update keeps)."""

    path: str
    schedule: str
    timezone: str = "UTC"
    script_path: str = ""
    is_flow: bool = False
    args: dict[str, Any] | None = None
    enabled: bool | None = None
    summary: str | None = None
    description: str | None = None
    on_failure: str | None = None
    on_failure_times: int | None = None
    on_failure_exact: bool | None = None
    on_failure_extra_args: dict[str, Any] | None = None
    on_recovery: str | None = None
    on_recovery_times: int | None = None
    on_recovery_extra_args: dict[str, Any] | None = None
    on_success: str | None = None
    on_success_extra_args: dict[str, Any] | None = None
    ws_error_handler_muted: bool | None = None
    retry: dict[str, Any] | None = None
    no_flow_overlap: bool | None = None
    tag: str | None = None
    paused_until: dt.datetime | None = None
    cron_version: str | None = None

    def __post_init__(self) -> None:
        if self.paused_until is not None and self.paused_until.tzinfo is None:
            # A time without an offset is UTC (Windmill's clients always send one).
            object.__setattr__(self, "paused_until", self.paused_until.replace(tzinfo=dt.UTC))

    def check(self, limits: InputLimits) -> tuple[Cron, ZoneInfo]:
        """The checks that need nothing but the draft; the parsed cron and timezone."""
        check_text_fields(self)
        check_path(self.path)
        check_path(self.script_path, field="script_path")
        cron, tz = check_timing(self.schedule, self.timezone, self.cron_version)
        for name in ("args", "on_failure_extra_args", "on_recovery_extra_args"):
            value = getattr(self, name)
            if value is not None:
                check_json(name, value, max_depth=limits.max_args_depth)
        if self.on_success_extra_args is not None:
            check_json(
                "on_success_extra_args", self.on_success_extra_args, max_depth=limits.max_args_depth
            )
        check_int("on_failure_times", self.on_failure_times, 1, INT4_MAX)
        check_int("on_recovery_times", self.on_recovery_times, 1, INT4_MAX)
        for name in _HANDLER_FIELDS:
            value = getattr(self, name)
            if value is not None:
                parse_handler(name, value)
        check_retry(self.retry)
        return cron, tz


def check_timing(schedule: str, timezone: str, cron_version: str | None) -> tuple[Cron, ZoneInfo]:
    """The cron expression and timezone, each refused with a message naming its field."""
    if cron_version is not None and cron_version not in CRON_VERSIONS:
        raise BadInput(
            f"cron_version {short(cron_version)!r} is unknown: use one of {', '.join(CRON_VERSIONS)}"
        )
    try:
        cron = parse_cron(schedule)
    except BadInput as exc:
        raise BadInput(f"schedule: {exc}") from None
    try:
        tz = load_timezone(timezone)
    except BadInput as exc:
        raise BadInput(f"timezone: {exc}") from None
    return cron, tz


def check_retry(retry: Mapping[str, Any] | None) -> Retry | None:
    """Windmill's retry object (``{constant: {attempts, seconds}, exponential: {attempts,
    multiplier, seconds, random_factor}}``), refused with what is wrong."""
    if retry is None:
        return None
    try:
        parsed = Retry.model_validate(retry)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput(f"retry.{where}: {first['msg']}") from None
    if parsed.retry_if is not None:
        raise BadInput(
            "retry.retry_if is not supported on schedules (it is on flow steps): remove it"
        )
    for name in ("constant", "exponential"):
        part = getattr(parsed, name)
        if part is not None:
            check_int(f"retry.{name}.attempts", part.attempts, 0, MAX_RETRY_ATTEMPTS)
            check_int(f"retry.{name}.seconds", part.seconds, 0, INT4_MAX)
    if parsed.exponential is not None:
        check_int("retry.exponential.multiplier", parsed.exponential.multiplier, 1, INT4_MAX)
    return parsed


def first_tick(
    cron: Cron, tz: ZoneInfo, after: dt.datetime, paused_until: dt.datetime | None
) -> dt.datetime:
    """The first fire time after ``after`` and not before ``paused_until``."""
    if paused_until is not None and paused_until > after:
        # A tick exactly at paused_until runs: start the search just before it.
        after = paused_until - dt.timedelta(microseconds=1)
    return cron.next_after(after, tz)


def preview(
    schedule: str, timezone: str, cron_version: str | None, *, now: dt.datetime | None = None
) -> list[dt.datetime]:
    """The next :data:`PREVIEW_COUNT` fire times (``POST /api/schedules/preview``)."""
    check_text_fields(ScheduleDraft(path="u/x/y", schedule=schedule, timezone=timezone))
    cron, tz = check_timing(schedule, timezone, cron_version)
    return cron.upcoming(now or dt.datetime.now(dt.UTC), tz, PREVIEW_COUNT)


# -- checks that read the database -------------------------------------------------------------


async def _runnable(
    conn: psycopg.AsyncConnection, access: Access, field: str, path: str, is_flow: bool
) -> dict[str, Any]:
    """The script or flow at ``path`` if the saver may run it; :class:`BadInput` naming
    ``field`` otherwise (never 404: the request itself is at fault)."""
    row = await runnable_row(conn, access.workspace_id, path, is_flow=is_flow)
    kind = "flow" if is_flow else "script"
    if row is None or not access.can_read(path, row.get("extra_perms")):
        raise BadInput(
            f"{field}: no {kind} at {path} that {access.username} may run "
            f"(save the {kind} first, or check its path and permissions)"
        )
    if is_flow and row["archived"]:
        raise BadInput(f"{field}: the flow at {path} is archived: unarchive it first")
    return row


async def _check_targets(
    conn: psycopg.AsyncConnection,
    access: Access,
    draft: ScheduleDraft,
    script_path: str,
    is_flow: bool,
) -> None:
    row = await _runnable(conn, access, "script_path", script_path, is_flow)
    try:
        validate_args(row["schema"], dict(draft.args or {}))
    except ArgumentError as exc:
        raise BadInput(f"args: {exc} (checked against the schema of {script_path})") from None
    for name in _HANDLER_FIELDS:
        value = getattr(draft, name)
        if value is not None:
            ref = parse_handler(name, value)
            await _runnable(conn, access, name, ref.path, ref.is_flow)


def _params(draft: ScheduleDraft, access: Access, next_tick: dt.datetime | None) -> dict[str, Any]:
    values = {f.name: getattr(draft, f.name) for f in fields(draft)}
    for name in (
        "args",
        "on_failure_extra_args",
        "on_recovery_extra_args",
        "on_success_extra_args",
        "retry",
    ):
        if values[name] is not None:
            values[name] = Jsonb(values[name])
    return {
        **values,
        "workspace_id": access.workspace_id,
        "ws_error_handler_muted": bool(draft.ws_error_handler_muted),
        "no_flow_overlap": bool(draft.no_flow_overlap),
        "edited_by": access.username,
        "email": access.actor.email,
        "permissioned_as": access.actor.permissioned_as,
        "next_tick": next_tick,
    }


async def create_schedule(
    pool: AsyncConnectionPool, access: Access, draft: ScheduleDraft, limits: InputLimits
) -> None:
    """A new schedule at ``draft.path``. Disabled unless ``enabled`` is sent true (as
    Windmill stores it); a path taken is refused (400)."""
    cron, tz = draft.check(limits)
    enabled = bool(draft.enabled)
    next_tick = first_tick(cron, tz, dt.datetime.now(dt.UTC), draft.paused_until)
    async with pool.connection() as conn, conn.transaction():
        await require_folder_of(conn, access.workspace_id, draft.path)
        access.require_create(draft.path)
        await _check_targets(conn, access, draft, draft.script_path, draft.is_flow)
        params = _params(draft, access, next_tick if enabled else None)
        params["enabled"] = enabled
        params["cron_version"] = draft.cron_version or "v2"
        inserted = await (await conn.execute(Q["sched_insert"], params)).fetchone()
        if inserted is None:
            raise Conflict(
                f"Schedule {draft.path} already exists (change it with POST "
                f"/schedules/update/{draft.path})"
            )
        await record_access(
            conn,
            access,
            "schedule.create",
            ActionKind.CREATE,
            draft.path,
            parameters={"schedule": draft.schedule, "script_path": draft.script_path},
        )


async def _locked(conn: psycopg.AsyncConnection, access: Access, path: str) -> dict[str, Any]:
    check_path(path)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q["sched_lock"], {"workspace_id": access.workspace_id, "path": path})
    row = await cur.fetchone()
    if row is None or not access.can_read(path, row["extra_perms"]):
        raise NotFound(f"Schedule not found: {path}")
    return row


async def update_schedule(
    pool: AsyncConnectionPool,
    access: Access,
    path: str,
    draft: ScheduleDraft,
    limits: InputLimits,
) -> None:
    """Change the schedule at ``path`` (Windmill's ``EditSchedule``: its path, runnable and
    enabled flag stay). Its next tick is computed again from now."""
    async with pool.connection() as conn, conn.transaction():
        row = await _locked(conn, access, path)
        access.require_write(path, row["extra_perms"])
        # The runnable is the stored one: fill it in before the checks that need it.
        full = ScheduleDraft(
            **{
                **{f.name: getattr(draft, f.name) for f in fields(draft)},
                "path": path,
                "script_path": row["script_path"],
                "is_flow": row["is_flow"],
            }
        )
        cron, tz = full.check(limits)
        await _check_targets(conn, access, full, row["script_path"], row["is_flow"])
        next_tick = first_tick(cron, tz, dt.datetime.now(dt.UTC), full.paused_until)
        await conn.execute(Q["sched_update"], _params(full, access, next_tick))
        await record_access(
            conn,
            access,
            "schedule.edit",
            ActionKind.UPDATE,
            path,
            parameters={"schedule": full.schedule},
        )


async def set_enabled(pool: AsyncConnectionPool, access: Access, path: str, enabled: bool) -> None:
    """Enable (from the next tick after now) or disable the schedule at ``path``. Enabling
    checks again that the caller, who its runs then act as, may run its script or flow."""
    async with pool.connection() as conn, conn.transaction():
        row = await _locked(conn, access, path)
        access.require_write(path, row["extra_perms"])
        next_tick = None
        if enabled:
            await _runnable(conn, access, "script_path", row["script_path"], row["is_flow"])
            cron, tz = check_timing(row["schedule"], row["timezone"], row["cron_version"])
            next_tick = first_tick(cron, tz, dt.datetime.now(dt.UTC), row["paused_until"])
        await conn.execute(
            Q["sched_set_enabled"],
            {
                "workspace_id": access.workspace_id,
                "path": path,
                "enabled": enabled,
                "next_tick": next_tick,
                "email": access.actor.email,
                "permissioned_as": access.actor.permissioned_as,
            },
        )
        await record_access(
            conn,
            access,
            "schedule.setenabled",
            ActionKind.UPDATE,
            path,
            parameters={"enabled": str(enabled).lower()},
        )


async def delete_schedule(pool: AsyncConnectionPool, access: Access, path: str) -> None:
    """Remove the schedule at ``path``; its past runs stay in the jobs' history."""
    async with pool.connection() as conn, conn.transaction():
        row = await _locked(conn, access, path)
        access.require_write(path, row["extra_perms"])
        await conn.execute(Q["sched_delete"], {"workspace_id": access.workspace_id, "path": path})
        await record_access(conn, access, "schedule.delete", ActionKind.DELETE, path)


async def get_schedule(pool: AsyncConnectionPool, access: Access, path: str) -> dict[str, Any]:
    check_path(path)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["sched_get"], {"workspace_id": access.workspace_id, "path": path})
        row = await cur.fetchone()
    if row is None or not access.can_read(path, row["extra_perms"]):
        raise NotFound(f"Schedule not found: {path}")
    return row


async def schedule_exists(pool: AsyncConnectionPool, access: Access, path: str) -> bool:
    """Whether a schedule the caller may read is at ``path``."""
    try:
        await get_schedule(pool, access, path)
    except NotFound:
        return False
    return True


@dataclass(frozen=True)
class ScheduleQuery:
    page: int = 1
    per_page: int = 100
    #: The runnable's path (Windmill's ``path`` filter).
    script_path: str | None = None
    is_flow: bool | None = None
    path_start: str | None = None
    #: A JSON object the schedule's args must contain.
    args: dict[str, Any] | None = None


async def list_schedules(
    pool: AsyncConnectionPool, access: Access, query: ScheduleQuery
) -> list[dict[str, Any]]:
    check_page(query.page, query.per_page)
    check_text_fields(query)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["sched_list"],
            {
                "workspace_id": access.workspace_id,
                "script_path": query.script_path,
                "is_flow": query.is_flow,
                "path_like": like_prefix(query.path_start) if query.path_start else None,
                "args": Jsonb(query.args) if query.args is not None else None,
                "limit": query.per_page,
                "offset": (query.page - 1) * query.per_page,
                **access.sql_params(),
            },
        )
        return await cur.fetchall()


async def recent_jobs(
    pool: AsyncConnectionPool, workspace_id: str, paths: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """The last 20 ended runs of each schedule of ``paths`` (id, success, duration_ms)."""
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    if not paths:
        return out
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["sched_recent_jobs"], {"workspace_id": workspace_id, "paths": paths}
            )
        ).fetchall()
    for path, job_id, success, duration_ms in rows:
        out[path].append({"id": str(job_id), "success": success, "duration_ms": duration_ms})
    return out
