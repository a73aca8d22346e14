"""Script versions: saving one (each a hash; the previous live version at its path is
archived), reading them by path or hash, history and lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, LiteralString

from psycopg.rows import dict_row
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, NotFound
from gristmill.queue.enqueue import NewJob, push_job
from gristmill.queue.states import JobKind
from gristmill.runtimes import (
    DependencyLocking,
    RuntimeRegistry,
    ScriptError,
    UnknownRuntimeError,
)
from gristmill.runtimes.schema import signature_to_schema
from gristmill.scripts.deployment import DEPENDENCY_TAG, needs_lock_job
from gristmill.scripts.hashes import digest_version, format_hash, parse_hash
from gristmill.scripts.paths import check_path
from gristmill.validation import (
    INT2_MAX,
    INT2_MIN,
    INT4_MAX,
    InputLimits,
    check_int,
    check_json,
    check_no_nul,
    check_page,
    check_script_size,
    check_text_fields,
)
from gristmill.workspace.folders import require_folder_of

__all__ = [
    "Author",
    "HistoryEntry",
    "ScriptQuery",
    "VersionDraft",
    "archive_by_hash",
    "archive_by_path",
    "delete_by_hash",
    "delete_by_path",
    "fetch_by_hash",
    "fetch_by_path",
    "fetch_live",
    "history",
    "is_empty_schema",
    "list_paths",
    "list_versions",
    "parse_schema",
    "save_version",
    "script_error_message",
    "version_exists",
]


def parse_schema(
    registry: RuntimeRegistry, language: str, content: str, limits: InputLimits
) -> tuple[str, dict[str, Any] | None, ScriptError | None]:
    """The schema ``content`` would be saved with, or why it cannot be: nothing is written.

    Answers ``(runtime name, schema, None)`` or ``(runtime name, None, error)``; an unknown
    language, NUL bytes or a source over the size limit are refused (:class:`BadInput`).
    The editor calls this as the user types, so a script error is an answer, not a failure.
    """
    check_no_nul("content", content)
    check_script_size(content, limits)
    try:
        name = registry.resolve(language)
    except UnknownRuntimeError as exc:
        raise BadInput(str(exc)) from None
    try:
        signature = registry.get(name).parse_signature(content)
    except ScriptError as exc:
        return name, None, exc
    return name, signature_to_schema(signature), None


def is_empty_schema(schema: dict[str, Any] | None) -> bool:
    """Whether a client sent no schema worth keeping: none, or one without properties (the
    schema ``wmill script bootstrap`` writes and ``wmill script push`` sends for a script
    whose metadata was never generated). Windmill keeps such a schema but does not check
    arguments against it, so the script takes its arguments; Gristmill checks them, so it
    infers the schema from ``main`` instead. A script whose ``main`` takes nothing gets the
    same empty schema back."""
    return schema is None or not schema.get("properties")


def script_error_message(exc: ScriptError) -> str:
    return f"the script cannot be used: {exc}"


@dataclass(frozen=True)
class Author:
    """Who saves a version (and so queues its dependency job)."""

    username: str
    email: str
    permissioned_as: str


@dataclass(frozen=True)
class VersionDraft:
    """A new version of the script at ``path``, as a client sends it."""

    path: str
    content: str
    language: str
    parent_hash: str | None = None
    summary: str = ""
    description: str = ""
    #: The client's schema; ``None`` infers it from ``main``'s parameters.
    schema: dict[str, Any] | None = None
    kind: str = "script"
    tag: str | None = None
    #: A lock sent with the version (Windmill CLI's ``.script.lock``): kept, nothing queued.
    lock: str | None = None
    timeout: int | None = None
    priority: int | None = None
    envs: list[str] | None = None
    deployment_message: str | None = None

    def check(self, limits: InputLimits) -> None:
        """Refuse what the database cannot store or the instance does not take, before any
        write: text with NUL, integers beyond their columns, a source over the limit."""
        check_path(self.path)
        check_text_fields(self)
        check_script_size(self.content, limits)
        # timeout is an integer column with CHECK > 0, priority a smallint.
        check_int("timeout", self.timeout, 1, INT4_MAX)
        check_int("priority", self.priority, INT2_MIN, INT2_MAX)
        if self.schema is not None:
            check_json("schema", self.schema, max_depth=limits.max_args_depth)


def _version_hash(workspace_id: str, draft: VersionDraft, language: str, schema: Any) -> int:
    return digest_version(
        [
            workspace_id,
            draft.path,
            draft.parent_hash,
            draft.summary,
            draft.description,
            draft.content,
            schema,
            language,
            draft.kind,
            draft.tag,
            draft.lock,
            draft.timeout,
            draft.priority,
            draft.envs,
        ]
    )


async def save_version(
    pool: AsyncConnectionPool,
    registry: RuntimeRegistry,
    *,
    workspace_id: str,
    author: Author,
    draft: VersionDraft,
    access: Access,
    limits: InputLimits | None = None,
) -> int:
    """Save ``draft`` as the new live version at its path; return its hash.

    Everything is checked before anything is written: the path, the language, the source
    (parsed by its runtime), the caller's right to write the path (a new path: to create
    there, and a folder path needs its folder), the parent. A path that already has a live
    version needs ``parent_hash`` set to that version's hash. The new version keeps the
    ACL (``extra_perms``) of the path. When the script needs dependencies, a dependency job
    is queued in the same transaction.
    """
    draft.check(limits or InputLimits())
    try:
        language = registry.resolve(draft.language)
    except UnknownRuntimeError as exc:
        raise BadInput(str(exc)) from None
    runtime = registry.get(language)
    lock = draft.lock
    if lock == "" and isinstance(runtime, DependencyLocking):
        # Windmill reads an empty lock as none sent (it is what `wmill script push` sends
        # for a file without a .script.lock): the dependencies are locked here.
        lock = None
    try:
        signature = runtime.parse_signature(draft.content)
        needs_lock = needs_lock_job(runtime, draft.content, lock)
    except ScriptError as exc:
        raise BadInput(script_error_message(exc)) from None
    if lock is None and not needs_lock and isinstance(runtime, DependencyLocking):
        lock = ""  # nothing to lock: ready at once
    parent_hash = parse_hash(draft.parent_hash) if draft.parent_hash is not None else None
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            Q["lock_script_path"], {"workspace_id": workspace_id, "path": draft.path}
        )
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["get_script_by_path"], {"workspace_id": workspace_id, "path": draft.path}
        )
        latest = await cur.fetchone()
        if latest is None:
            # A missing folder first: the clearer answer (folder names are not secret).
            await require_folder_of(conn, workspace_id, draft.path)
            access.require_create(draft.path)
            extra_perms: dict[str, Any] = {}
        else:
            access.require_write(draft.path, latest["extra_perms"])
            extra_perms = latest["extra_perms"]
        await cur.execute(
            Q["get_live_script_by_path"], {"workspace_id": workspace_id, "path": draft.path}
        )
        live = await cur.fetchone()
        parent: dict[str, Any] | None = None
        if parent_hash is not None:
            await cur.execute(
                Q["get_script_by_hash"], {"workspace_id": workspace_id, "hash": parent_hash}
            )
            parent = await cur.fetchone()
            if parent is None:
                raise BadInput(f"the parent hash {draft.parent_hash} does not exist")
        if live is not None and (parent is None or parent["hash"] != live["hash"]):
            raise BadInput(
                f"Path conflict for {draft.path} with non-archived hash "
                f"{format_hash(live['hash'])} (to save a new version, send parent_hash set "
                "to that hash)"
            )
        schema = draft.schema
        if is_empty_schema(schema):
            schema = signature_to_schema(signature, previous=parent["schema"] if parent else None)
        new_hash = _version_hash(workspace_id, draft, language, schema)
        parent_hashes = [parent["hash"], *parent["parent_hashes"]][:20] if parent else []
        inserted = await (
            await conn.execute(
                Q["insert_script"],
                {
                    "workspace_id": workspace_id,
                    "hash": new_hash,
                    "path": draft.path,
                    "parent_hashes": parent_hashes,
                    "summary": draft.summary,
                    "description": draft.description,
                    "content": draft.content,
                    "schema": Json(schema),
                    "language": language,
                    "kind": draft.kind,
                    "tag": draft.tag,
                    "lock": lock,
                    "timeout": draft.timeout,
                    "priority": draft.priority,
                    "envs": draft.envs,
                    "deployment_message": draft.deployment_message,
                    "created_by": author.username,
                    "extra_perms": Json(extra_perms),
                },
            )
        ).fetchone()
        if inserted is None:
            raise BadInput(
                "A script with same hash (hence same path, description, summary, content) "
                "already exists!"
            )
        if parent is not None:
            await conn.execute(
                Q["archive_script"], {"workspace_id": workspace_id, "hash": parent["hash"]}
            )
        # Audited as Windmill does; the entry is also what git sync commits from.
        await record_access(
            conn,
            access,
            "scripts.create" if latest is None else "scripts.update",
            ActionKind.CREATE if latest is None else ActionKind.UPDATE,
            draft.path,
            parameters={"hash": format_hash(new_hash)},
        )
        if needs_lock:
            await push_job(
                conn,
                NewJob(
                    workspace_id=workspace_id,
                    kind=JobKind.DEPENDENCIES,
                    tag=DEPENDENCY_TAG,
                    args={},
                    created_by=author.username,
                    permissioned_as=author.permissioned_as,
                    email=author.email,
                    language=language,
                    runnable_path=draft.path,
                    runnable_hash=new_hash,
                ),
            )
    return new_hash


async def _fetch_one(
    pool: AsyncConnectionPool, query: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q[query], params)
        return await cur.fetchone()


def _visible(row: dict[str, Any] | None, access: Access | None) -> bool:
    """Whether a version exists and ``access`` (``None``: the platform itself) may read it.
    A script the caller may not read answers as one that does not exist (404, not 403), so
    that reads do not tell which paths exist."""
    return row is not None and (access is None or access.can_read(row["path"], row["extra_perms"]))


async def fetch_by_path(
    pool: AsyncConnectionPool, workspace_id: str, path: str, access: Access | None = None
) -> dict[str, Any]:
    """The newest version at ``path``, archived or not (Windmill's ``get/p``)."""
    check_path(path)
    row = await _fetch_one(pool, "get_script_by_path", {"workspace_id": workspace_id, "path": path})
    if row is None or not _visible(row, access):
        raise NotFound(f"Script not found at name {path}")
    return row


async def fetch_live(
    pool: AsyncConnectionPool, workspace_id: str, path: str, access: Access | None = None
) -> dict[str, Any]:
    """The version that runs at ``path``: the newest one not archived."""
    check_path(path)
    row = await _fetch_one(
        pool, "get_live_script_by_path", {"workspace_id": workspace_id, "path": path}
    )
    if row is None or not _visible(row, access):
        raise NotFound(f"Script not found at name {path}")
    return row


async def fetch_by_hash(
    pool: AsyncConnectionPool, workspace_id: str, hash_text: str, access: Access | None = None
) -> dict[str, Any]:
    """One exact version."""
    row = await _fetch_one(
        pool,
        "get_script_by_hash",
        {"workspace_id": workspace_id, "hash": parse_hash(hash_text)},
    )
    if row is None or not _visible(row, access):
        raise NotFound(f"no script with hash {hash_text} in workspace {workspace_id}")
    return row


async def version_exists(
    pool: AsyncConnectionPool, workspace_id: str, path: str, access: Access | None = None
) -> bool:
    """Whether a version exists at ``path`` that ``access`` may read."""
    check_path(path)
    row = await _fetch_one(pool, "get_script_by_path", {"workspace_id": workspace_id, "path": path})
    return _visible(row, access)


@dataclass(frozen=True)
class HistoryEntry:
    hash: int
    deployment_message: str | None
    created_at: Any
    created_by: str


async def history(
    pool: AsyncConnectionPool, workspace_id: str, path: str, access: Access | None = None
) -> list[HistoryEntry]:
    """Every version at ``path``, newest first."""
    await fetch_by_path(pool, workspace_id, path, access)
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(Q["script_history"], {"workspace_id": workspace_id, "path": path})
        ).fetchall()
    if not rows:
        raise NotFound(f"Script not found at name {path}")
    return [HistoryEntry(*row) for row in rows]


@dataclass(frozen=True)
class ScriptQuery:
    page: int = 1
    per_page: int = 100
    path_start: str | None = None
    path_exact: str | None = None
    created_by: str | None = None
    show_archived: bool = False
    language: str | None = None

    def __post_init__(self) -> None:
        check_page(self.page, self.per_page)
        check_text_fields(self)


def _read_filter(access: Access | None) -> dict[str, Any]:
    """The ``gm_can_read`` parameters of a list (``None``: everything, for the platform)."""
    if access is None:
        return {"is_admin": True, "owners": [], "folders_read": []}
    return access.sql_params()


async def list_paths(pool: AsyncConnectionPool, workspace_id: str, access: Access) -> list[str]:
    """The paths of the live scripts ``access`` may read, sorted."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                Q["list_script_paths"], {"workspace_id": workspace_id, **_read_filter(access)}
            )
        ).fetchall()
    return [r[0] for r in rows]


async def list_versions(
    pool: AsyncConnectionPool,
    workspace_id: str,
    query: ScriptQuery,
    access: Access | None = None,
) -> list[dict[str, Any]]:
    """The newest version of each path ``access`` may read, newest first."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["list_scripts"],
            {
                "workspace_id": workspace_id,
                "show_archived": query.show_archived,
                "path_like": like_prefix(query.path_start) if query.path_start else None,
                "path_exact": query.path_exact,
                "created_by": query.created_by,
                "language": query.language,
                "limit": query.per_page,
                "offset": (query.page - 1) * query.per_page,
                **_read_filter(access),
            },
        )
        return await cur.fetchall()


async def _write_and_run(
    pool: AsyncConnectionPool,
    access: Access,
    row: dict[str, Any],
    query: LiteralString,
    params: dict[str, Any],
    operation: str,
) -> str:
    """Run ``query`` on a version the caller sees (``row``) once they may write its path,
    audited as ``operation``; the path, for the caller to forget cached versions."""
    access.require_write(row["path"], row["extra_perms"])
    kind = ActionKind.DELETE if operation == "scripts.delete" else ActionKind.UPDATE
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(query, {"workspace_id": access.workspace_id, **params})
        await record_access(
            conn,
            access,
            operation,
            kind,
            row["path"],
            parameters={"hash": format_hash(row["hash"])},
        )
    return row["path"]


async def archive_by_path(pool: AsyncConnectionPool, access: Access, path: str) -> str:
    """Archive every version at ``path`` (write access; 404 when the caller cannot see it)."""
    row = await fetch_by_path(pool, access.workspace_id, path, access)
    return await _write_and_run(
        pool, access, row, Q["archive_script_path"], {"path": path}, "scripts.archive"
    )


async def archive_by_hash(pool: AsyncConnectionPool, access: Access, hash_text: str) -> str:
    row = await fetch_by_hash(pool, access.workspace_id, hash_text, access)
    return await _write_and_run(
        pool, access, row, Q["archive_script"], {"hash": row["hash"]}, "scripts.archive"
    )


async def delete_by_hash(pool: AsyncConnectionPool, access: Access, hash_text: str) -> str:
    row = await fetch_by_hash(pool, access.workspace_id, hash_text, access)
    return await _write_and_run(
        pool, access, row, Q["delete_script_hash"], {"hash": row["hash"]}, "scripts.delete"
    )


async def delete_by_path(pool: AsyncConnectionPool, access: Access, path: str) -> str:
    row = await fetch_by_path(pool, access.workspace_id, path, access)
    return await _write_and_run(
        pool, access, row, Q["delete_script_path"], {"path": path}, "scripts.delete"
    )
