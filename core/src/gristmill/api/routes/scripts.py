"""Scripts: saving versions (each a hash), reading them, their history."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from gristmill.api.deps import ActorDep, PlatformDep, WorkspaceDep, current_actor
from gristmill.api.errors import bad_request, not_found
from gristmill.db.queries import Q
from gristmill.jobs import DEPENDENCY_TAG, NewJob, format_hash, parse_hash, push_job
from gristmill.runtime import DependencyLocking, Runtime, ScriptError, UnknownRuntimeError
from gristmill.schema import signature_to_schema
from psycopg.rows import dict_row
from psycopg.types.json import Json
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["router", "script_to_json"]

router = APIRouter(
    prefix="/w/{workspace}/scripts", tags=["scripts"], dependencies=[Depends(current_actor)]
)

PATH_PATTERN = re.compile(r"^[ufg](/[\w-]+){2,}$")


class NewScript(BaseModel):
    """A new script version (Windmill's NewScript; fields Gristmill does not use are ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    path: str
    content: str
    language: str
    parent_hash: str | None = None
    summary: str = ""
    description: str = ""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    kind: str = "script"
    tag: str | None = None
    lock: str | None = None
    timeout: int | None = None
    priority: int | None = None
    envs: list[str] | None = None
    deployment_message: str | None = None


def check_path(path: str) -> None:
    if not PATH_PATTERN.match(path):
        raise bad_request(
            f"invalid path '{path}': a path looks like u/<user>/<name> or f/<folder>/<name> "
            "(letters, digits, '_' and '-' between the slashes)"
        )


def script_error_message(exc: ScriptError) -> str:
    return f"the script cannot be used: {exc}"


def _needs_lock_job(runtime: Runtime, body: NewScript) -> bool:
    """Whether saving this version queues a dependency job: its runtime locks dependencies,
    the script asks for some, and the request carries no lock of its own."""
    if body.lock is not None or not isinstance(runtime, DependencyLocking):
        return False
    return runtime.lock_inputs(body.content) is not None


def compute_hash(workspace: str, body: NewScript, language: str, schema: Any) -> int:
    """A version's hash: 64 bits of a digest of everything that defines it."""
    material = json.dumps(
        [
            workspace,
            body.path,
            body.parent_hash,
            body.summary,
            body.description,
            body.content,
            schema,
            language,
            body.kind,
            body.tag,
            body.lock,
            body.timeout,
            body.priority,
            body.envs,
        ],
        sort_keys=True,
        default=str,
    ).encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big", signed=True)


def script_to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "workspace_id": row["workspace_id"],
        "hash": format_hash(row["hash"]),
        "path": row["path"],
        "parent_hashes": [format_hash(h) for h in row["parent_hashes"]] or None,
        "summary": row["summary"],
        "description": row["description"],
        "content": row["content"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
        "archived": row["archived"],
        "deleted": row["deleted"],
        "schema": row["schema"],
        "is_template": False,
        "extra_perms": {},
        "lock": row["lock"],
        "lock_error_logs": row["lock_error_logs"],
        "language": row["language"],
        "kind": row["kind"],
        "tag": row["tag"],
        "timeout": row["timeout"],
        "priority": row["priority"],
        "envs": row["envs"],
        "deployment_message": row["deployment_message"],
    }


def _hash_param(text: str) -> int:
    try:
        return parse_hash(text)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


@router.post("/create", status_code=201, response_class=PlainTextResponse)
async def create_script(
    body: NewScript,
    request: Request,
    workspace: WorkspaceDep,
    platform: PlatformDep,
    actor: ActorDep,
) -> str:
    """Save a new version of the script at ``path``; returns its hash.

    The schema is inferred from ``main``'s parameters when the request carries none. A path
    that already has a live version needs ``parent_hash`` set to that version's hash.
    """
    registry = platform.require_registry()
    check_path(body.path)
    try:
        language = registry.resolve(body.language)
    except UnknownRuntimeError as exc:
        raise bad_request(str(exc)) from None
    runtime = registry.get(language)
    try:
        signature = runtime.parse_signature(body.content)
        needs_lock = _needs_lock_job(runtime, body)
    except ScriptError as exc:
        raise bad_request(script_error_message(exc)) from None
    lock = body.lock
    if lock is None and not needs_lock and isinstance(runtime, DependencyLocking):
        lock = ""  # nothing to lock: ready at once
    assert platform.pool is not None
    async with platform.pool.connection() as conn, conn.transaction():
        await conn.execute(Q["lock_script_path"], {"workspace_id": workspace, "path": body.path})
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["get_live_script_by_path"], {"workspace_id": workspace, "path": body.path}
        )
        live = await cur.fetchone()
        parent: dict[str, Any] | None = None
        if body.parent_hash is not None:
            await cur.execute(
                Q["get_script_by_hash"],
                {"workspace_id": workspace, "hash": _hash_param(body.parent_hash)},
            )
            parent = await cur.fetchone()
            if parent is None:
                raise bad_request(f"the parent hash {body.parent_hash} does not exist")
        if live is not None and (parent is None or parent["hash"] != live["hash"]):
            raise bad_request(
                f"Path conflict for {body.path} with non-archived hash {format_hash(live['hash'])}"
                " (to save a new version, send parent_hash set to that hash)"
            )
        schema = body.schema_
        if schema is None:
            schema = signature_to_schema(signature, previous=parent["schema"] if parent else None)
        new_hash = compute_hash(workspace, body, language, schema)
        parent_hashes = [parent["hash"], *parent["parent_hashes"]][:20] if parent else []
        inserted = await (
            await conn.execute(
                Q["insert_script"],
                {
                    "workspace_id": workspace,
                    "hash": new_hash,
                    "path": body.path,
                    "parent_hashes": parent_hashes,
                    "summary": body.summary,
                    "description": body.description,
                    "content": body.content,
                    "schema": Json(schema),
                    "language": language,
                    "kind": body.kind,
                    "tag": body.tag,
                    "lock": lock,
                    "timeout": body.timeout,
                    "priority": body.priority,
                    "envs": body.envs,
                    "deployment_message": body.deployment_message,
                    "created_by": actor.username,
                },
            )
        ).fetchone()
        if inserted is None:
            raise bad_request(
                "A script with same hash (hence same path, description, summary, content) "
                "already exists!"
            )
        if parent is not None:
            await conn.execute(
                Q["archive_script"], {"workspace_id": workspace, "hash": parent["hash"]}
            )
        if needs_lock:
            await push_job(
                conn,
                NewJob(
                    workspace_id=workspace,
                    kind="dependencies",
                    tag=DEPENDENCY_TAG,
                    args={},
                    created_by=actor.username,
                    permissioned_as=actor.permissioned_as,
                    email=actor.email,
                    language=language,
                    runnable_path=body.path,
                    runnable_hash=new_hash,
                ),
            )
    request.app.state.script_cache.drop(workspace, body.path)
    return format_hash(new_hash)


async def _fetch(
    platform: PlatformDep, query: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q[query], params)
        return await cur.fetchone()


async def get_script_row(platform: PlatformDep, workspace: str, path: str) -> dict[str, Any]:
    row = await _fetch(platform, "get_script_by_path", {"workspace_id": workspace, "path": path})
    if row is None:
        raise not_found(f"Script not found at name {path}")
    return row


async def get_script_row_by_hash(
    platform: PlatformDep, workspace: str, hash: str
) -> dict[str, Any]:
    row = await _fetch(
        platform, "get_script_by_hash", {"workspace_id": workspace, "hash": _hash_param(hash)}
    )
    if row is None:
        raise not_found(f"no script with hash {hash} in workspace {workspace}")
    return row


@router.get("/get/p/{path:path}")
async def get_script_by_path(
    path: str, workspace: WorkspaceDep, platform: PlatformDep
) -> dict[str, Any]:
    """The newest version at ``path``."""
    return script_to_json(await get_script_row(platform, workspace, path))


@router.get("/get/h/{hash}")
async def get_script_by_hash(
    hash: str, workspace: WorkspaceDep, platform: PlatformDep
) -> dict[str, Any]:
    """One exact version."""
    return script_to_json(await get_script_row_by_hash(platform, workspace, hash))


@router.get("/deployment_status/h/{hash}")
async def deployment_status(
    hash: str, workspace: WorkspaceDep, platform: PlatformDep
) -> dict[str, Any]:
    """Whether a version is ready to run: its lock, or why locking failed, and its
    dependency job. ``status`` is ``deployed``, ``locking`` or ``failed``."""
    row = await get_script_row_by_hash(platform, workspace, hash)
    job = await _fetch(
        platform,
        "last_dependency_job",
        {"workspace_id": workspace, "path": row["path"], "hash": row["hash"]},
    )
    if row["lock_error_logs"] is not None:
        status = "failed"
    elif row["lock"] is None and job is not None:
        status = "locking"
    else:
        status = "deployed"
    return {
        "lock": row["lock"],
        "lock_error_logs": row["lock_error_logs"],
        "job_id": str(job["id"]) if job else None,
        "status": status,
    }


@router.get("/raw/p/{path:path}", response_class=PlainTextResponse)
async def raw_script_by_path(path: str, workspace: WorkspaceDep, platform: PlatformDep) -> str:
    """The source of the newest version at ``path``."""
    path = re.sub(r"\.(py|ts|go|sh|sql)$", "", path)
    return (await get_script_row(platform, workspace, path))["content"]


@router.get("/raw/h/{hash}", response_class=PlainTextResponse)
async def raw_script_by_hash(hash: str, workspace: WorkspaceDep, platform: PlatformDep) -> str:
    """The source of one exact version."""
    return (await get_script_row_by_hash(platform, workspace, hash))["content"]


@router.get("/exists/p/{path:path}")
async def script_exists(path: str, workspace: WorkspaceDep, platform: PlatformDep) -> bool:
    """Whether any version exists at ``path``."""
    row = await _fetch(platform, "get_script_by_path", {"workspace_id": workspace, "path": path})
    return row is not None


@router.get("/history/p/{path:path}")
async def script_history(
    path: str, workspace: WorkspaceDep, platform: PlatformDep
) -> list[dict[str, Any]]:
    """Every version at ``path``, newest first."""
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        rows = await (
            await conn.execute(Q["script_history"], {"workspace_id": workspace, "path": path})
        ).fetchall()
    if not rows:
        raise not_found(f"Script not found at name {path}")
    return [
        {"script_hash": format_hash(h), "deployment_msg": msg, "created_at": created}
        for h, msg, created in rows
    ]


@router.get("/list")
async def list_scripts(
    workspace: WorkspaceDep,
    platform: PlatformDep,
    page: int = Query(1, ge=1),
    per_page: int = Query(100, ge=1, le=1000),
    path_start: str | None = None,
    path_exact: str | None = None,
    created_by: str | None = None,
    show_archived: bool = False,
    language: str | None = None,
) -> list[dict[str, Any]]:
    """The newest version of each script path."""
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["list_scripts"],
            {
                "workspace_id": workspace,
                "show_archived": show_archived,
                "path_start": path_start,
                "path_exact": path_exact,
                "created_by": created_by,
                "language": language,
                "limit": per_page,
                "offset": (page - 1) * per_page,
            },
        )
        rows = await cur.fetchall()
    return [
        {
            "hash": format_hash(row["hash"]),
            "path": row["path"],
            "summary": row["summary"],
            "description": row["description"],
            "created_at": row["created_at"],
            "created_by": row["created_by"],
            "archived": row["archived"],
            "extra_perms": {},
            "language": row["language"],
            "kind": row["kind"],
            "tag": row["tag"],
            "starred": False,
            "has_draft": False,
            "draft_only": False,
            "has_deploy_errors": row["lock_error_logs"] is not None,
        }
        for row in rows
    ]
