"""Variables: text values at a path, plain or secret (Windmill's ``variable``).

A secret's value is stored encrypted (:mod:`gristmill.workspace.secrets`) and leaves the
platform only through :func:`read_variable_value` (the ``get_value`` endpoint, ``get`` with
``decrypt_secret``, ``$var:`` arguments): each such read is audited
(``variables.decrypt_secret``), and a read by a job is recorded in ``job_secret_read``
*before* the value is returned, so that the worker masks it in the job's logs.

Visibility is the items' rule (:class:`~gristmill.auth.permissions.Access`): what a caller
may not read answers as if it did not exist (404).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, Conflict, NotFound
from gristmill.scripts.paths import check_path
from gristmill.validation import TooLarge, check_no_nul, check_page
from gristmill.workspace.secrets import Secrets, WrongKey

__all__ = [
    "CONTEXTUAL_VARIABLES",
    "MAX_VARIABLE_BYTES",
    "ContextualVariable",
    "NewVariable",
    "Variable",
    "VariableEdit",
    "contextual_variables",
    "create_variable",
    "delete_variable",
    "encrypt_value",
    "get_variable",
    "list_variables",
    "read_variable_value",
    "update_variable",
    "variable_exists",
]

#: The largest value a variable holds (UTF-8 bytes).
MAX_VARIABLE_BYTES = 1024 * 1024

#: The operation audited for every read of a secret's value (Windmill's name).
DECRYPT_OPERATION = "variables.decrypt_secret"


@dataclass(frozen=True)
class Variable:
    """A variable as the API shows it: ``value`` is ``None`` for a secret not decrypted."""

    workspace_id: str
    path: str
    value: str | None
    is_secret: bool
    description: str
    extra_perms: dict[str, bool]
    account: int | None
    is_oauth: bool


@dataclass(frozen=True)
class NewVariable:
    path: str
    value: str
    is_secret: bool = False
    description: str = ""
    account: int | None = None
    is_oauth: bool = False


@dataclass(frozen=True)
class VariableEdit:
    """What an update changes; ``None``: unchanged. A new ``path`` renames."""

    path: str | None = None
    value: str | None = None
    is_secret: bool | None = None
    description: str | None = None


@dataclass(frozen=True)
class ContextualVariable:
    name: str
    value: str
    description: str
    is_custom: bool = False


#: The variables every job gets in its environment, and what each holds.
CONTEXTUAL_VARIABLES: tuple[tuple[str, str], ...] = (
    ("WM_WORKSPACE", "Workspace id of the current script"),
    (
        "WM_TOKEN",
        "Token ephemeral to the current script with equal permission to the "
        "permission of the run (usable as a bearer token against the API)",
    ),
    ("WM_EMAIL", "Email of the user that executed the current script"),
    ("WM_USERNAME", "Username of the user that executed the current script"),
    ("WM_PERMISSIONED_AS", "Fully qualified owner the script runs as (u/<user>)"),
    ("WM_JOB_ID", "Job id of the current script"),
    ("WM_JOB_PATH", "Path of the script or flow being run, if any"),
    ("WM_ROOT_FLOW_JOB_ID", "Job id of the root flow of the current job, if any"),
    ("WM_FLOW_JOB_ID", "Job id of the encapsulating flow, if the job is a flow step"),
    ("WM_FLOW_PATH", "Path of the encapsulating flow, if the job is a flow step"),
    ("WM_FLOW_STEP_ID", "The node id in a flow (like 'a', 'b', or 'f')"),
    ("WM_SCHEDULE_PATH", "Path of the schedule that triggered the job, if any"),
    ("WM_STATE_PATH", "State resource path unique to a script and its trigger"),
    ("WM_STATE_PATH_NEW", "State resource path unique to a script and its trigger"),
    ("WM_BASE_URL", "Base url of this instance"),
    ("BASE_URL", "Base url of this instance"),
    ("BASE_INTERNAL_URL", "Url of this instance as reached from inside jobs"),
)


def contextual_variables(
    access: Access, *, base_url: str, internal_url: str
) -> list[ContextualVariable]:
    """The contextual variables with the values they would have in a job the caller runs
    now (job-specific ones show a placeholder)."""
    username = access.username
    known = {
        "WM_WORKSPACE": access.workspace_id,
        "WM_EMAIL": access.actor.email,
        "WM_USERNAME": username,
        "WM_PERMISSIONED_AS": f"u/{username}",
        "WM_BASE_URL": base_url,
        "BASE_URL": base_url,
        "BASE_INTERNAL_URL": internal_url,
        "WM_STATE_PATH": f"u/{username}/<script>/{username}",
        "WM_STATE_PATH_NEW": f"u/{username}/<script>/{username}",
    }
    return [
        ContextualVariable(name, known.get(name, f"<{name.lower()} of the job>"), description)
        for name, description in CONTEXTUAL_VARIABLES
    ]


def _check_text(field: str, value: str) -> None:
    """NUL and lone surrogates (``"\\ud800"`` in JSON): text Postgres cannot store."""
    check_no_nul(field, value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadInput(
            f"{field} contains an unpaired surrogate (\\u{ord(value[exc.start]):04x}) at "
            f"position {exc.start}, which is not text; remove it"
        ) from None


def _check_value(value: str, field: str = "value") -> None:
    _check_text(field, value)
    size = len(value.encode("utf-8"))
    if size > MAX_VARIABLE_BYTES:
        raise TooLarge(
            f"{field} is {size} bytes, over the limit of {MAX_VARIABLE_BYTES} bytes for a "
            "variable; store large data in a resource or a file"
        )


def _check_description(description: str) -> None:
    _check_text("description", description)
    if len(description) > 10_000:
        raise BadInput("description is over 10000 characters")


def _variable(row: Mapping[str, Any], *, value: str | None) -> Variable:
    return Variable(
        workspace_id=row["workspace_id"],
        path=row["path"],
        value=value,
        is_secret=row["is_secret"],
        description=row["description"],
        extra_perms=dict(row["extra_perms"] or {}),
        account=row["account"],
        is_oauth=row["is_oauth"],
    )


def _not_found(path: str) -> NotFound:
    return NotFound(f"variable {path!r} not found (or not visible to you)")


async def _fetch(
    conn: psycopg.AsyncConnection, access: Access, path: str, *, lock: bool = False
) -> dict[str, Any]:
    """The row at ``path`` if the caller may read it; :class:`NotFound` otherwise."""
    check_path(path)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        Q["lock_variable" if lock else "get_variable"],
        {"workspace_id": access.workspace_id, "path": path},
    )
    row = await cur.fetchone()
    if row is None or not access.can_read(path, row["extra_perms"]):
        raise _not_found(path)
    return row


async def _reveal(
    conn: psycopg.AsyncConnection,
    secrets: Secrets,
    access: Access,
    row: Mapping[str, Any],
    job_id: UUID | None,
) -> str:
    """A readable row's plain value: a secret is recorded for the job's log masking first,
    audited, then decrypted."""
    if not row["is_secret"]:
        return row["value"]
    path = row["path"]
    if job_id is not None:
        await conn.execute(Q["record_job_secret_read"], {"job_id": job_id, "path": path})
    await record_access(
        conn,
        access,
        DECRYPT_OPERATION,
        ActionKind.EXECUTE,
        path,
        parameters={"job_id": str(job_id)} if job_id is not None else None,
    )
    return await secrets.decrypt(conn, access.workspace_id, row["value"])


async def read_variable_value(
    conn: psycopg.AsyncConnection,
    secrets: Secrets,
    access: Access,
    path: str,
    *,
    job_id: UUID | None = None,
) -> str:
    """The plain value of the variable at ``path`` as ``access`` may read it.

    :class:`NotFound` when it does not exist or is not visible to the caller. For a secret:
    the read is audited (``variables.decrypt_secret``) and, with ``job_id``, recorded in
    ``job_secret_read`` (committed with the audit entry before the value is returned), so
    that the worker masks the value in that job's logs. Used by the API's ``get_value`` and
    by the worker's ``$var:`` argument expansion.
    """
    async with conn.transaction():
        row = await _fetch(conn, access, path)
        return await _reveal(conn, secrets, access, row, job_id)


async def list_variables(
    pool: AsyncConnectionPool,
    access: Access,
    *,
    path_start: str | None = None,
    page: int = 1,
    per_page: int = 1000,
) -> list[Variable]:
    """The variables the caller may read, by path; secrets without their value."""
    check_page(page, per_page)
    check_no_nul("path_start", path_start)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["list_variables"],
            {
                "workspace_id": access.workspace_id,
                "path_start": like_prefix(path_start) if path_start else None,
                "limit": per_page,
                "offset": (page - 1) * per_page,
                **access.sql_params(),
            },
        )
        rows = await cur.fetchall()
    return [_variable(r, value=None if r["is_secret"] else r["value"]) for r in rows]


async def get_variable(
    pool: AsyncConnectionPool,
    secrets: Secrets,
    access: Access,
    path: str,
    *,
    decrypt_secret: bool = False,
) -> Variable:
    """One variable; a secret's value only with ``decrypt_secret`` (an audited read, which a
    job's logs then mask, as through ``get_value``)."""
    async with pool.connection() as conn, conn.transaction():
        row = await _fetch(conn, access, path)
        if row["is_secret"] and not decrypt_secret:
            return _variable(row, value=None)
        value = await _reveal(conn, secrets, access, row, access.actor.job_id)
        return _variable(row, value=value)


async def get_variable_value(
    pool: AsyncConnectionPool, secrets: Secrets, access: Access, path: str
) -> str:
    """The plain value (the caller's job, if any, masks it in its logs from now on)."""
    async with pool.connection() as conn:
        return await read_variable_value(conn, secrets, access, path, job_id=access.actor.job_id)


async def variable_exists(pool: AsyncConnectionPool, access: Access, path: str) -> bool:
    """Whether a variable the caller may read is at ``path``."""
    try:
        async with pool.connection() as conn:
            await _fetch(conn, access, path)
    except NotFound:
        return False
    return True


async def _stored_value(
    conn: psycopg.AsyncConnection,
    secrets: Secrets,
    workspace_id: str,
    value: str,
    *,
    is_secret: bool,
    already_encrypted: bool,
) -> str:
    """What the ``value`` column holds: the text, or a secret's ciphertext. An
    ``already_encrypted`` value must be this workspace's ciphertext (checked by opening it)."""
    if not is_secret:
        return value
    if already_encrypted:
        # A wrong instance key must not pass for a bad value: the key is checked first.
        await secrets.workspace_key(conn, workspace_id)
        try:
            await secrets.decrypt(conn, workspace_id, value)
        except WrongKey:
            raise BadInput(
                "already_encrypted: the value is not a secret encrypted by this workspace "
                "(POST /variables/encrypt makes one)"
            ) from None
        return value
    return await secrets.encrypt(conn, workspace_id, value)


async def create_variable(
    pool: AsyncConnectionPool,
    secrets: Secrets,
    access: Access,
    new: NewVariable,
    *,
    already_encrypted: bool = False,
) -> str:
    """Store a new variable; its path. :class:`Conflict` when the path is taken."""
    check_path(new.path)
    _check_value(new.value)
    _check_description(new.description)
    access.require_create(new.path)
    async with pool.connection() as conn, conn.transaction():
        stored = await _stored_value(
            conn,
            secrets,
            access.workspace_id,
            new.value,
            is_secret=new.is_secret,
            already_encrypted=already_encrypted,
        )
        row = await (
            await conn.execute(
                Q["insert_variable"],
                {
                    "workspace_id": access.workspace_id,
                    "path": new.path,
                    "value": stored,
                    "is_secret": new.is_secret,
                    "description": new.description,
                    "account": new.account,
                    "is_oauth": new.is_oauth,
                    "created_by": access.username,
                },
            )
        ).fetchone()
        if row is None:
            raise Conflict(f"variable {new.path!r} already exists")
        await record_access(
            conn,
            access,
            "variables.create",
            ActionKind.CREATE,
            new.path,
        )
    return new.path


async def update_variable(
    pool: AsyncConnectionPool,
    secrets: Secrets,
    access: Access,
    path: str,
    edit: VariableEdit,
    *,
    already_encrypted: bool = False,
) -> str:
    """Change (and perhaps rename) the variable at ``path``; its path after the change.
    A secret that becomes plain is decrypted, a plain one that becomes secret encrypted."""
    check_path(path)
    if edit.path is not None:
        check_path(edit.path)
    if edit.value is not None:
        _check_value(edit.value)
    if edit.description is not None:
        _check_description(edit.description)
    async with pool.connection() as conn, conn.transaction():
        row = await _fetch(conn, access, path, lock=True)
        access.require_write(path, row["extra_perms"])
        new_path = edit.path or path
        if new_path != path:
            access.require_create(new_path)
            taken = await (
                await conn.execute(
                    Q["variable_path_taken"],
                    {"workspace_id": access.workspace_id, "path": new_path},
                )
            ).fetchone()
            if taken is not None:
                raise Conflict(f"variable {new_path!r} already exists")
        is_secret = row["is_secret"] if edit.is_secret is None else edit.is_secret
        if edit.value is not None:
            stored = await _stored_value(
                conn,
                secrets,
                access.workspace_id,
                edit.value,
                is_secret=is_secret,
                already_encrypted=already_encrypted,
            )
        elif is_secret == row["is_secret"]:
            stored = row["value"]
        elif is_secret:
            stored = await secrets.encrypt(conn, access.workspace_id, row["value"])
        else:
            # A secret made plain: its value becomes readable by everyone who sees it.
            stored = await secrets.decrypt(conn, access.workspace_id, row["value"])
        await conn.execute(
            Q["update_variable"],
            {
                "workspace_id": access.workspace_id,
                "path": path,
                "new_path": new_path,
                "value": stored,
                "is_secret": is_secret,
                "description": row["description"] if edit.description is None else edit.description,
            },
        )
        parameters: dict[str, Any] = {"value_changed": edit.value is not None}
        if new_path != path:
            parameters["new_path"] = new_path
        if is_secret != row["is_secret"]:
            parameters["is_secret"] = is_secret
        await record_access(
            conn,
            access,
            "variables.update",
            ActionKind.UPDATE,
            path,
            parameters=parameters,
        )
    return new_path


async def delete_variable(pool: AsyncConnectionPool, access: Access, path: str) -> None:
    async with pool.connection() as conn, conn.transaction():
        row = await _fetch(conn, access, path, lock=True)
        access.require_write(path, row["extra_perms"])
        await conn.execute(
            Q["delete_variable"], {"workspace_id": access.workspace_id, "path": path}
        )
        await record_access(
            conn,
            access,
            "variables.delete",
            ActionKind.DELETE,
            path,
        )


async def encrypt_value(
    pool: AsyncConnectionPool, secrets: Secrets, access: Access, value: str
) -> str:
    """``value`` encrypted with the workspace's key, as a secret's ``value`` column holds it
    (for ``create``/``update`` with ``already_encrypted``). Members who may create items only."""
    access.require_not_operator()
    _check_value(value)
    async with pool.connection() as conn:
        return await secrets.encrypt(conn, access.workspace_id, value)
