"""Flows as stored objects (Windmill's ``flows`` routes): create, update, read, list,
history, versions, archive, delete. Nothing here runs a flow.

Every operation goes through the caller's :class:`~gristmill.auth.permissions.Access`, as
scripts do: a flow the caller may not read answers as one that does not exist (404), a
write they may not do is 403, a path ``f/<folder>/...`` needs its folder, operators never
write, and lists hold only what the caller may read (``gm_can_read``). Input is checked
before anything is written. Each save adds a version (the history); the ACL
(``extra_perms``) and the archived flag stay across saves.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, Conflict, NotFound
from gristmill.flows.checks import check_flow
from gristmill.flows.model import OpenFlow, PathFlow, PathScript, iter_modules, parse_flow
from gristmill.scripts.hashes import parse_hash
from gristmill.scripts.paths import check_path
from gristmill.validation import (
    INT2_MAX,
    INT2_MIN,
    INT4_MAX,
    InputLimits,
    TooLarge,
    check_int,
    check_json,
    check_page,
    check_text_fields,
    short,
)
from gristmill.workspace.folders import require_folder_of

__all__ = [
    "FlowDraft",
    "FlowQuery",
    "FlowRow",
    "FlowVersionEntry",
    "archive_flow",
    "create_flow",
    "delete_flow",
    "flow_exists",
    "get_flow",
    "get_version",
    "history",
    "list_flows",
    "list_paths",
    "update_flow",
]

#: Longer paths are refused before the primary key's index would (a 500).
MAX_PATH_LENGTH = 1000
#: The largest flow version id (a bigserial).
MAX_VERSION_ID = 2**63 - 1


@dataclass(frozen=True)
class FlowRow:
    """A flow as stored: its current fields (or, from :func:`get_version`, one version's
    value and schema with the flow's other fields). ``value`` is absent (``None``) in lists."""

    workspace_id: str
    path: str
    summary: str
    description: str
    value: dict[str, Any] | None
    schema: dict[str, Any] | None
    edited_by: str
    edited_at: dt.datetime
    archived: bool
    extra_perms: dict[str, Any]
    tag: str | None
    ws_error_handler_muted: bool
    dedicated_worker: bool
    visible_to_runner_only: bool
    timeout: int | None
    priority: int | None
    #: The id of the current version (of the version read, for :func:`get_version`).
    version_id: int | None


def _row(row: dict[str, Any]) -> FlowRow:
    return FlowRow(
        workspace_id=row["workspace_id"],
        path=row["path"],
        summary=row["summary"],
        description=row["description"],
        value=row.get("value"),
        schema=row.get("schema"),
        edited_by=row["edited_by"],
        edited_at=row["edited_at"],
        archived=row["archived"],
        extra_perms=row["extra_perms"],
        tag=row["tag"],
        ws_error_handler_muted=row["ws_error_handler_muted"],
        dedicated_worker=row["dedicated_worker"],
        visible_to_runner_only=row["visible_to_runner_only"],
        timeout=row["timeout"],
        priority=row["priority"],
        version_id=row["version_id"],
    )


def _check_value(value: Any) -> OpenFlow:
    """The OpenFlow checks of a flow's ``value`` (a ``FlowValue``) that need nothing but the
    flow, before any write; returns the flow as read.

    First its outline (an object with a ``modules`` list of objects, each message naming the
    field), then :func:`gristmill.flows.checks.check_flow`'s pure checks: module shapes, ids,
    input transforms, expressions' syntax. What needs the workspace (the scripts and
    sub-flows it names) is :func:`_check_targets`, in the save's transaction.
    """
    if not isinstance(value, dict):
        raise BadInput("value must be an object (an OpenFlow FlowValue with a 'modules' list)")
    modules = value.get("modules")
    if not isinstance(modules, list):
        raise BadInput("value.modules must be a list of modules (send [] for an empty flow)")
    for index, module in enumerate(modules):
        if not isinstance(module, dict):
            raise BadInput(f"value.modules[{index}] must be an object (a FlowModule)")
    flow = parse_flow({"summary": "", "value": value})
    check_flow(flow)
    return flow


async def _check_targets(
    conn: psycopg.AsyncConnection,
    workspace_id: str,
    path: str,
    flow: OpenFlow,
    languages: Collection[str] | None,
    sync: bool = False,
) -> None:
    """Refuse a flow naming what its workspace does not hold (:class:`BadInput` naming each
    module and field): a ``script`` module's path without a live version (or its pinned
    ``hash`` with no version), a ``flow`` module's path without a live flow, sub-flows that
    come back to one another or to this flow (``path``), a ``rawscript`` language not in
    ``languages`` (when given).

    ``sync``: the save is part of a ``wmill sync push`` (its ``X-Windmill-Deploy-Origin:
    sync`` header), which pushes every script before any flow but the flows in path order:
    a sub-flow not saved yet may come later in the same push, so it is let through (the
    step fails, named, if it is still missing when the flow runs). Cycles among the flows
    that exist are refused all the same.

    One read (``flowcheck_targets``): the scripts named, and every saved flow reachable
    through sub-flows with its value; the cycle search then walks them in memory.
    """
    script_paths: set[str] = set()
    hashes: dict[int, str] = {}
    flow_paths: set[str] = set()
    for module, _ in iter_modules(flow):
        inner = module.value
        if isinstance(inner, PathScript) and inner.hash is not None:
            with contextlib.suppress(BadInput):  # check_flow names a malformed hash
                hashes[parse_hash(inner.hash)] = inner.hash
        elif isinstance(inner, PathScript) and inner.path:
            script_paths.add(inner.path)
        elif isinstance(inner, PathFlow) and inner.path:
            flow_paths.add(inner.path)
    scripts: set[str] = set()
    found_hashes: set[str] = set()
    flows: dict[str, Any] = {}
    if script_paths or hashes or flow_paths:
        rows = await (
            await conn.execute(
                Q["flowcheck_targets"],
                {
                    "workspace_id": workspace_id,
                    "script_paths": sorted(script_paths),
                    "hashes": sorted(hashes),
                    "flow_paths": sorted(flow_paths),
                },
            )
        ).fetchall()
        for kind, target, hash_, value in rows:
            if kind == "script":
                scripts.add(target)
            elif kind == "hash":
                found_hashes.add(hashes[hash_])
            else:
                flows[target] = value
    parsed: dict[str, OpenFlow | None] = {}

    def saved_flow(target: str) -> OpenFlow | None:
        if target not in flows:
            # During a sync, a sub-flow to come: nothing to follow yet.
            return parse_flow({"summary": "", "value": {"modules": []}}) if sync else None
        if target not in parsed:
            try:
                parsed[target] = parse_flow({"summary": "", "value": flows[target]})
            except BadInput:
                # A stored flow the model cannot read names no sub-flow we could follow.
                parsed[target] = parse_flow({"summary": "", "value": {"modules": []}})
        return parsed[target]

    check_flow(
        flow,
        script_exists=scripts.__contains__,
        hash_exists=found_hashes.__contains__,
        flow_exists=None if sync else flows.__contains__,
        get_flow=saved_flow,
        flow_path=path,
        known_languages=languages,
    )


@dataclass(frozen=True)
class FlowDraft:
    """A flow as a client sends it (Windmill's ``OpenFlowWPath``)."""

    path: str
    value: dict[str, Any]
    summary: str = ""
    description: str = ""
    schema: dict[str, Any] | None = None
    tag: str | None = None
    ws_error_handler_muted: bool = False
    dedicated_worker: bool = False
    visible_to_runner_only: bool = False
    timeout: int | None = None
    priority: int | None = None
    deployment_message: str | None = None

    def check(self, limits: InputLimits) -> OpenFlow:
        """Refuse what cannot be stored or is not a flow, before any write: the path, text
        with NUL, integers beyond their columns, JSON too deep or too large, a value that is
        not a ``FlowValue``; returns the flow as read."""
        _check_path(self.path)
        check_text_fields(self)
        check_int("timeout", self.timeout, 1, INT4_MAX)
        check_int("priority", self.priority, INT2_MIN, INT2_MAX)
        check_json("value", self.value, max_depth=limits.max_args_depth)
        if self.schema is not None:
            check_json("schema", self.schema, max_depth=limits.max_args_depth)
        flow = _check_value(self.value)
        _check_size(self.value, self.schema, limits)
        return flow


def _check_path(path: str, field: str = "path") -> None:
    check_path(path, field=field)
    if len(path) > MAX_PATH_LENGTH:
        raise BadInput(f"{field} is {len(path)} characters long, over {MAX_PATH_LENGTH}")


def _check_size(value: Any, schema: Any, limits: InputLimits) -> None:
    # A flow holds its inline scripts: the limit of a job's arguments bounds it as a whole
    # (the request body limit applies first).
    try:
        size = len(orjson.dumps(value)) + len(orjson.dumps(schema))
    except TypeError as exc:
        # Integers beyond 64 bits, which the JSON columns cannot take through orjson.
        raise BadInput(f"the flow cannot be stored: {exc}") from None
    if size > limits.max_args_bytes:
        raise TooLarge(
            f"the flow is {size} bytes as JSON, over the limit of {limits.max_args_bytes} bytes "
            f"(GRISTMILL_MAX_ARGS_SIZE_MB={limits.max_args_bytes // (1024 * 1024)})"
        )


def _not_found(path: str) -> NotFound:
    return NotFound(f"flow not found at path {short(path)}")


async def _fetch(
    conn: psycopg.AsyncConnection, query: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q[query], params)
    return await cur.fetchone()


async def _visible(
    conn: psycopg.AsyncConnection, access: Access, path: str, *, lock: bool = False
) -> FlowRow:
    """The flow at ``path`` if the caller may read it, else 404 (reads never tell which
    paths exist)."""
    _check_path(path)
    row = await _fetch(
        conn,
        "lock_flow" if lock else "get_flow",
        {"workspace_id": access.workspace_id, "path": path},
    )
    if row is None or not access.can_read(path, row["extra_perms"]):
        raise _not_found(path)
    return _row(row)


def _fields(draft: FlowDraft) -> dict[str, Any]:
    return {
        "summary": draft.summary,
        "description": draft.description,
        "value": Jsonb(draft.value),
        "schema": Jsonb(draft.schema) if draft.schema is not None else None,
        "tag": draft.tag,
        "ws_error_handler_muted": draft.ws_error_handler_muted,
        "dedicated_worker": draft.dedicated_worker,
        "visible_to_runner_only": draft.visible_to_runner_only,
        "timeout": draft.timeout,
        "priority": draft.priority,
    }


async def _add_version(
    conn: psycopg.AsyncConnection, access: Access, path: str, draft: FlowDraft
) -> int:
    row = await (
        await conn.execute(
            Q["insert_flow_version"],
            {
                "workspace_id": access.workspace_id,
                "path": path,
                "value": Jsonb(draft.value),
                "schema": Jsonb(draft.schema) if draft.schema is not None else None,
                "created_by": access.username,
                "deployment_msg": draft.deployment_message,
            },
        )
    ).fetchone()
    assert row is not None  # the flow was written in this transaction
    return row[0]


async def create_flow(
    pool: AsyncConnectionPool,
    access: Access,
    draft: FlowDraft,
    limits: InputLimits | None = None,
    *,
    languages: Collection[str] | None = None,
    sync: bool = False,
) -> int:
    """A new flow at ``draft.path`` and its first version; returns the version's id.

    A path already taken is refused (:class:`Conflict`, 400, as Windmill): saving again
    goes through :func:`update_flow`. The scripts and sub-flows the flow names must exist
    (:func:`_check_targets`; ``languages``: the installed runtimes, when given; ``sync``:
    the request comes from ``wmill sync push``).
    """
    flow = draft.check(limits or InputLimits())
    async with pool.connection() as conn, conn.transaction():
        # A missing folder first: the clearer answer (folder names are not secret).
        await require_folder_of(conn, access.workspace_id, draft.path)
        access.require_create(draft.path)
        await _check_targets(conn, access.workspace_id, draft.path, flow, languages, sync)
        inserted = await (
            await conn.execute(
                Q["insert_flow"],
                {
                    "workspace_id": access.workspace_id,
                    "path": draft.path,
                    "edited_by": access.username,
                    **_fields(draft),
                },
            )
        ).fetchone()
        if inserted is None:
            raise Conflict(
                f"Flow {draft.path} already exists (update it with POST /flows/update/{draft.path})"
            )
        version = await _add_version(conn, access, draft.path, draft)
        await record_access(
            conn, access, "flows.create", ActionKind.CREATE, draft.path, parameters={"id": version}
        )
    return version


async def update_flow(
    pool: AsyncConnectionPool,
    access: Access,
    path: str,
    draft: FlowDraft,
    limits: InputLimits | None = None,
    *,
    languages: Collection[str] | None = None,
    sync: bool = False,
) -> int:
    """Save ``draft`` as the new version of the flow at ``path``; returns the version's id.

    ``draft.path`` other than ``path`` moves the flow (and its history) there: that needs
    the right to create at the new path, its folder, and the path free. The flow keeps its
    ACL and its archived flag. Its targets are checked as :func:`create_flow`'s.
    """
    _check_path(path)
    flow = draft.check(limits or InputLimits())
    async with pool.connection() as conn, conn.transaction():
        current = await _visible(conn, access, path, lock=True)
        access.require_write(path, current.extra_perms)
        await _check_targets(conn, access.workspace_id, draft.path, flow, languages, sync)
        moved = draft.path != path
        if moved:
            await require_folder_of(conn, access.workspace_id, draft.path)
            access.require_create(draft.path)
            taken = await (
                await conn.execute(
                    Q["flow_path_taken"],
                    {"workspace_id": access.workspace_id, "path": draft.path},
                )
            ).fetchone()
            if taken is not None and taken[0]:
                raise Conflict(f"Flow {draft.path} already exists: it cannot be moved there")
        try:
            await conn.execute(
                Q["update_flow"],
                {
                    "workspace_id": access.workspace_id,
                    "path": path,
                    "new_path": draft.path,
                    "edited_by": access.username,
                    **_fields(draft),
                },
            )
        except psycopg.errors.UniqueViolation:
            # Another flow was created or moved there since the check above.
            raise Conflict(f"Flow {draft.path} already exists: it cannot be moved there") from None
        version = await _add_version(conn, access, draft.path, draft)
        parameters: dict[str, Any] = {"id": version}
        if moved:
            parameters["path"] = draft.path
        await record_access(
            conn, access, "flows.update", ActionKind.UPDATE, path, parameters=parameters
        )
    return version


async def get_flow(pool: AsyncConnectionPool, access: Access, path: str) -> FlowRow:
    """The flow at ``path``, archived or not."""
    async with pool.connection() as conn:
        return await _visible(conn, access, path)


async def flow_exists(pool: AsyncConnectionPool, access: Access, path: str) -> bool:
    """Whether a flow the caller may read is at ``path`` (``False`` for one they may not)."""
    try:
        await get_flow(pool, access, path)
    except NotFound:
        return False
    return True


@dataclass(frozen=True)
class FlowVersionEntry:
    id: int
    created_at: dt.datetime
    deployment_msg: str | None
    created_by: str


async def history(pool: AsyncConnectionPool, access: Access, path: str) -> list[FlowVersionEntry]:
    """Every version of the flow at ``path``, newest first."""
    async with pool.connection() as conn:
        await _visible(conn, access, path)
        rows = await (
            await conn.execute(
                Q["flow_history"], {"workspace_id": access.workspace_id, "path": path}
            )
        ).fetchall()
    return [FlowVersionEntry(*row) for row in rows]


async def get_version(
    pool: AsyncConnectionPool, access: Access, version: int, path: str | None = None
) -> FlowRow:
    """Version ``version`` of a flow (of the flow at ``path`` when given): its value and
    schema, with the flow's current summary, description, ACL and options (as Windmill
    answers). A version of a flow the caller may not read is 404."""
    check_int("version", version, 1, MAX_VERSION_ID)
    async with pool.connection() as conn:
        if path is not None:
            await _visible(conn, access, path)
        row = await _fetch(
            conn,
            "get_flow_version",
            {"workspace_id": access.workspace_id, "path": path, "id": version},
        )
    if row is None or not access.can_read(row["path"], row["extra_perms"]):
        where = f" of flow {short(path)}" if path is not None else ""
        raise NotFound(f"no version {version}{where}")
    return _row(row)


@dataclass(frozen=True)
class FlowQuery:
    """The filters of :func:`list_flows` (Windmill's ``listFlows``)."""

    page: int = 1
    per_page: int = 100
    path_start: str | None = None
    path_exact: str | None = None
    #: Who saved the flow last (Windmill's ``created_by`` filter, on ``edited_by``).
    edited_by: str | None = None
    #: Only archived flows (Windmill's meaning), instead of only live ones.
    show_archived: bool = False
    order_desc: bool = True

    def __post_init__(self) -> None:
        check_page(self.page, self.per_page)
        check_text_fields(self)


async def list_flows(pool: AsyncConnectionPool, access: Access, query: FlowQuery) -> list[FlowRow]:
    """The flows the caller may read, without their value, most recently edited first
    (``order_desc=False``: oldest first)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["list_flows"],
            {
                "workspace_id": access.workspace_id,
                "show_archived": query.show_archived,
                "path_like": like_prefix(query.path_start) if query.path_start else None,
                "path_exact": query.path_exact,
                "edited_by": query.edited_by,
                "order_desc": query.order_desc,
                "limit": query.per_page,
                "offset": (query.page - 1) * query.per_page,
                **access.sql_params(),
            },
        )
        rows = await cur.fetchall()
    return [_row(row) for row in rows]


async def list_paths(pool: AsyncConnectionPool, access: Access) -> list[str]:
    """The paths of the live flows the caller may read, sorted."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["list_flow_paths"], {"workspace_id": access.workspace_id, **access.sql_params()}
            )
        ).fetchall()
    return [r[0] for r in rows]


async def archive_flow(
    pool: AsyncConnectionPool, access: Access, path: str, archived: bool = True
) -> None:
    """Archive the flow at ``path`` (``archived=False``: bring it back); needs write access."""
    async with pool.connection() as conn, conn.transaction():
        row = await _visible(conn, access, path, lock=True)
        access.require_write(path, row.extra_perms)
        await conn.execute(
            Q["archive_flow"],
            {"workspace_id": access.workspace_id, "path": path, "archived": archived},
        )
        await record_access(
            conn,
            access,
            "flows.archive",
            ActionKind.UPDATE,
            path,
            parameters={"archived": archived},
        )


async def delete_flow(pool: AsyncConnectionPool, access: Access, path: str) -> None:
    """Delete the flow at ``path`` and its history; needs write access.

    A flow already gone is deleted already, for a caller who may write at ``path``, as on
    Windmill: ``wmill sync push`` of a removed flow folder deletes the flow once per file of
    the folder and stops at the first error. Anyone else gets the 404 of a read, which
    never tells which paths exist."""
    async with pool.connection() as conn, conn.transaction():
        try:
            row = await _visible(conn, access, path, lock=True)
        except NotFound:
            if access.can_write(path):
                missing = await _fetch(
                    conn, "get_flow", {"workspace_id": access.workspace_id, "path": path}
                )
                if missing is None:
                    return
            raise
        access.require_write(path, row.extra_perms)
        await conn.execute(Q["delete_flow"], {"workspace_id": access.workspace_id, "path": path})
        await record_access(conn, access, "flows.delete", ActionKind.DELETE, path)
