"""Resource types: a name and the JSON schema its resources' values follow.

The built-in types (``resource_types.json``: ``postgresql``, ``mysql``, ``s3``, ``smtp``,
``git_repository``, ``state``, ``any``) exist in every workspace and cannot be changed or deleted; a workspace
adds its own. A type without a schema (``state``, ``any``) takes any value.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import psycopg
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.permissions import Access
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Conflict, NotFound
from gristmill.validation import check_json, check_no_nul, short

__all__ = [
    "STATE_TYPE",
    "ResourceTypeRow",
    "builtin_types",
    "check_type_name",
    "create_type",
    "delete_type",
    "file_extensions",
    "get_type",
    "list_types",
    "read_type",
    "require_type",
    "type_exists",
    "update_type",
    "validate_value",
]

#: The type of a script's state (``set_state``).
STATE_TYPE = "state"

# The database's CHECK on resource type names.
_NAME = re.compile(r"[a-zA-Z0-9_]+", re.ASCII)


@dataclass(frozen=True)
class ResourceTypeRow:
    name: str
    schema: dict[str, Any] | None
    description: str | None
    format_extension: str | None = None
    created_by: str | None = None
    edited_at: datetime | None = None
    #: Shipped with Gristmill: read-only, in every workspace.
    builtin: bool = False


@cache
def builtin_types() -> dict[str, ResourceTypeRow]:
    text = resources.files("gristmill.workspace").joinpath("resource_types.json").read_text()
    return {
        name: ResourceTypeRow(
            name=name,
            schema=entry.get("schema"),
            description=entry.get("description"),
            format_extension=entry.get("format_extension"),
            builtin=True,
        )
        for name, entry in json.loads(text).items()
    }


def check_type_name(name: str) -> None:
    check_no_nul("name", name)
    if not _NAME.fullmatch(name) or len(name) > 255:
        raise BadInput(
            f"invalid resource type name {short(name)!r}: ASCII letters, digits and '_' only"
        )


def _check_schema(schema: Any) -> None:
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise BadInput("schema must be a JSON schema object (or null for any value)")
    check_json("schema", schema)
    try:
        # The format checker also refuses a `pattern` that is no regular expression.
        jsonschema.Draft7Validator.check_schema(
            schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
        )
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise BadInput(
            f"schema is not a valid JSON schema: {short(exc.message, 300)}"
            + (f" (at {where})" if where else "")
        ) from None


def _row(row: tuple[Any, ...]) -> ResourceTypeRow:
    name, schema, description, format_extension, created_by, edited_at = row
    return ResourceTypeRow(name, schema, description, format_extension, created_by, edited_at)


async def list_types(pool: AsyncConnectionPool, workspace_id: str) -> list[ResourceTypeRow]:
    """The built-in types, then the workspace's own, each sorted by name."""
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(Q["list_resource_types"], {"workspace_id": workspace_id})
        ).fetchall()
    return [*sorted(builtin_types().values(), key=lambda t: t.name), *map(_row, rows)]


async def get_type(conn: psycopg.AsyncConnection, workspace_id: str, name: str) -> ResourceTypeRow:
    """The type ``name``; :class:`NotFound` when the workspace has no such type."""
    builtin = builtin_types().get(name)
    if builtin is not None:
        return builtin
    check_type_name(name)
    row = await (
        await conn.execute(Q["get_resource_type"], {"workspace_id": workspace_id, "name": name})
    ).fetchone()
    if row is None:
        raise NotFound(f"resource type '{name}' does not exist in workspace '{workspace_id}'")
    return _row(row)


async def read_type(pool: AsyncConnectionPool, workspace_id: str, name: str) -> ResourceTypeRow:
    if name in builtin_types():
        return builtin_types()[name]
    async with pool.connection() as conn:
        return await get_type(conn, workspace_id, name)


async def require_type(
    conn: psycopg.AsyncConnection, workspace_id: str, name: str
) -> ResourceTypeRow:
    """The type of a resource being written: an unknown one is bad input (400), not 404."""
    try:
        return await get_type(conn, workspace_id, name)
    except NotFound:
        raise BadInput(
            f"unknown resource_type {short(name)!r}: create it first "
            f"(POST /w/{workspace_id}/resources/type/create) or use 'any'"
        ) from None


async def type_exists(pool: AsyncConnectionPool, workspace_id: str, name: str) -> bool:
    if name in builtin_types():
        return True
    if not _NAME.fullmatch(name):
        return False
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["get_resource_type"], {"workspace_id": workspace_id, "name": name})
        ).fetchone()
    return row is not None


def _refuse_builtin(name: str, what: str) -> None:
    if name in builtin_types():
        raise BadInput(f"'{name}' is a built-in resource type: it cannot be {what}")


async def create_type(
    pool: AsyncConnectionPool,
    access: Access,
    *,
    name: str,
    schema: Any,
    description: str | None,
    format_extension: str | None = None,
) -> None:
    access.require_not_operator()
    check_type_name(name)
    check_no_nul("description", description)
    check_no_nul("format_extension", format_extension)
    if name in builtin_types():
        raise Conflict(f"resource type '{name}' already exists (it is built in)")
    _check_schema(schema)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["insert_resource_type"],
                {
                    "workspace_id": access.workspace_id,
                    "name": name,
                    "schema": Json(schema) if schema is not None else None,
                    "description": description,
                    "format_extension": format_extension,
                    "created_by": access.username,
                },
            )
        ).fetchone()
    if row is None:
        raise Conflict(f"resource type '{name}' already exists")


async def update_type(
    pool: AsyncConnectionPool,
    access: Access,
    name: str,
    *,
    schema: Any,
    set_schema: bool,
    description: str | None,
) -> None:
    access.require_not_operator()
    _refuse_builtin(name, "changed")
    check_type_name(name)
    check_no_nul("description", description)
    if set_schema:
        _check_schema(schema)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["update_resource_type"],
                {
                    "workspace_id": access.workspace_id,
                    "name": name,
                    "set_schema": set_schema,
                    "schema": Json(schema) if schema is not None else None,
                    "description": description,
                },
            )
        ).fetchone()
    if row is None:
        raise NotFound(
            f"resource type '{name}' does not exist in workspace '{access.workspace_id}'"
        )


async def delete_type(pool: AsyncConnectionPool, access: Access, name: str) -> None:
    access.require_not_operator()
    _refuse_builtin(name, "deleted")
    check_type_name(name)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["delete_resource_type"], {"workspace_id": access.workspace_id, "name": name}
            )
        ).fetchone()
    if row is None:
        raise NotFound(
            f"resource type '{name}' does not exist in workspace '{access.workspace_id}'"
        )


async def file_extensions(pool: AsyncConnectionPool, workspace_id: str) -> dict[str, str]:
    """``{type name: file extension}`` of the types that have one (the CLI's sync asks)."""
    return {
        t.name: t.format_extension
        for t in await list_types(pool, workspace_id)
        if t.format_extension
    }


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("$var:", "$res:"))


def validate_value(rtype: ResourceTypeRow, value: Any) -> None:
    """:class:`BadInput` listing the fields of ``value`` its type's schema refuses. A
    ``$var:``/``$res:`` reference stands for a value only known when read: it passes."""
    if rtype.schema is None:
        return
    validator = jsonschema.Draft7Validator(rtype.schema)
    try:
        errors = list(validator.iter_errors(value))
    except Exception as exc:
        # A schema the checks let through that fails in use (an unresolvable `$ref`, say):
        # the type is unusable, which is not the server's fault.
        raise BadInput(
            f"resource type '{rtype.name}' has a schema that cannot check values: "
            f"{short(str(exc), 200)}"
        ) from None
    problems = []
    for error in sorted(errors, key=lambda e: list(e.path)):
        if _is_reference(error.instance):
            continue
        where = ".".join(str(p) for p in error.absolute_path) or "value"
        problems.append(f"{where}: {short(error.message, 200)}")
    if problems:
        raise BadInput(
            f"value does not match resource type '{rtype.name}': " + "; ".join(problems[:10])
        )
