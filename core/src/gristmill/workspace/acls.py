"""Per-item ACLs: the ``extra_perms`` map of an item (``{"u/alice": true, "g/team": false}``,
``true`` = writer, ``false`` = reader), read and changed through ``/acls`` (Windmill's
``granular_acls``).

Each supported kind maps to three named queries of ``acls.sql`` (get, add, remove): the
kind is looked up in :data:`_KINDS`, an allowlist, so no table name ever comes from a
request. Who may change an item's ACL: workspace admins, and the item's writers (for a
folder: its owners; for a group: its writers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, LiteralString

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.auth.audit import ActionKind, record_access
from gristmill.auth.permissions import Access
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, NotFound
from gristmill.scripts.paths import check_path
from gristmill.validation import check_no_nul, short

__all__ = [
    "NAME_PATTERN",
    "SUPPORTED_KINDS",
    "UNSUPPORTED_KINDS",
    "add_acl",
    "check_name",
    "check_owner",
    "check_perms",
    "get_acl",
    "remove_acl",
]

#: Names of groups and folders (the database's CHECK), matched whole.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,255}", re.ASCII)
#: An ACL key: ``u/<username>`` or ``g/<group>``.
OWNER_PATTERN = re.compile(r"[ug]/[A-Za-z0-9_-]{1,255}", re.ASCII)


def check_name(what: str, name: str) -> None:
    """Refuse a group or folder name the database would not store (400)."""
    check_no_nul(what, name)
    if not NAME_PATTERN.fullmatch(name):
        raise BadInput(
            f"invalid {what} {short(name)!r}: 1 to 255 ASCII letters, digits, '_' or '-'"
        )


def check_owner(owner: str, *, field: str = "owner") -> None:
    """Refuse an ACL key that is not ``u/<username>`` or ``g/<group>`` (400)."""
    check_no_nul(field, owner)
    if not OWNER_PATTERN.fullmatch(owner):
        raise BadInput(
            f"invalid {field} {short(owner)!r}: expected u/<username> or g/<group> "
            "(ASCII letters, digits, '_' and '-')"
        )


def check_perms(extra_perms: dict[str, Any], *, field: str = "extra_perms") -> None:
    """An ``extra_perms`` map: owner keys to booleans."""
    for key, value in extra_perms.items():
        check_owner(key, field=f"{field} key")
        if not isinstance(value, bool):
            raise BadInput(f"{field}[{short(key)!r}] must be true (write) or false (read)")


@dataclass(frozen=True)
class _Kind:
    get: LiteralString
    add: LiteralString
    remove: LiteralString
    #: Whether the item is named by a path (``u/x/y``) rather than a bare name.
    by_path: bool


_KINDS: dict[str, _Kind] = {
    "script": _Kind(Q["acl_get_script"], Q["acl_add_script"], Q["acl_remove_script"], True),
    "group_": _Kind(Q["acl_get_group"], Q["acl_add_group"], Q["acl_remove_group"], False),
    "folder": _Kind(Q["acl_get_folder"], Q["acl_add_folder"], Q["acl_remove_folder"], False),
    "variable": _Kind(Q["acl_get_variable"], Q["acl_add_variable"], Q["acl_remove_variable"], True),
    "resource": _Kind(Q["acl_get_resource"], Q["acl_add_resource"], Q["acl_remove_resource"], True),
    "flow": _Kind(Q["acl_get_flow"], Q["acl_add_flow"], Q["acl_remove_flow"], True),
    "schedule": _Kind(Q["acl_get_schedule"], Q["acl_add_schedule"], Q["acl_remove_schedule"], True),
    "http_trigger": _Kind(
        Q["acl_get_http_trigger"], Q["acl_add_http_trigger"], Q["acl_remove_http_trigger"], True
    ),
    "postgres_trigger": _Kind(
        Q["acl_get_postgres_trigger"],
        Q["acl_add_postgres_trigger"],
        Q["acl_remove_postgres_trigger"],
        True,
    ),
}

#: The kinds whose ACLs can be read and changed.
SUPPORTED_KINDS = tuple(_KINDS)
#: Kinds Windmill has that Gristmill does not store yet: answered 400 "not supported yet".
UNSUPPORTED_KINDS = (
    "app",
    "raw_app",
    "websocket_trigger",
    "kafka_trigger",
    "nats_trigger",
    "mqtt_trigger",
    "sqs_trigger",
    "gcp_trigger",
    "email_trigger",
)


def _kind(kind: str, path: str) -> _Kind:
    check_no_nul("kind", kind)
    spec = _KINDS.get(kind)
    if spec is None:
        if kind in UNSUPPORTED_KINDS:
            raise BadInput(f"ACLs of kind {kind!r} are not supported yet")
        raise BadInput(f"unknown kind {short(kind)!r}: one of {', '.join(SUPPORTED_KINDS)}")
    if spec.by_path:
        check_path(path)
    else:
        check_name(kind.rstrip("_"), path)
    return spec


def _label(kind: str, path: str) -> str:
    return f"{kind.rstrip('_')} {path}"


def _can_read(access: Access, kind: str, path: str, perms: dict[str, Any]) -> bool:
    if kind == "group_":
        return True  # every member sees the groups (and their ACL)
    if kind == "folder":
        return access.is_admin or path in access.folders_read or path in access.folders_owned
    return access.can_read(path, perms)


def _can_change(access: Access, kind: str, path: str, perms: dict[str, Any]) -> bool:
    if access.is_admin:
        return True
    if access.is_operator:
        return False
    if kind == "folder":
        return path in access.folders_owned
    if kind == "group_":
        owners = set(access.owners)
        return any(perms.get(key) is True for key in owners)
    return access.can_write(path, perms)


async def _current(
    conn: psycopg.AsyncConnection, access: Access, kind: str, spec: _Kind, path: str
) -> dict[str, Any]:
    row = await (
        await conn.execute(spec.get, {"workspace_id": access.workspace_id, "path": path})
    ).fetchone()
    # An item the caller cannot see answers as one that does not exist.
    if row is None or not _can_read(access, kind, path, row[0]):
        raise NotFound(f"{_label(kind, path)} not found")
    return row[0]


async def get_acl(
    pool: AsyncConnectionPool, access: Access, kind: str, path: str
) -> dict[str, bool]:
    """The item's ``extra_perms``; 404 when it does not exist or the caller cannot see it."""
    spec = _kind(kind, path)
    async with pool.connection() as conn:
        return dict(await _current(conn, access, kind, spec, path))


async def _change(
    pool: AsyncConnectionPool,
    access: Access,
    kind: str,
    path: str,
    owner: str,
    write: bool | None,
) -> dict[str, bool]:
    spec = _kind(kind, path)
    check_owner(owner)
    async with pool.connection() as conn, conn.transaction():
        perms = await _current(conn, access, kind, spec, path)
        if not _can_change(access, kind, path, perms):
            raise Forbidden(
                f"{access.username} may not change the permissions of {_label(kind, path)}: "
                "only workspace admins and its writers (a folder's owners) may"
            )
        params = {"workspace_id": access.workspace_id, "path": path, "owner": owner}
        if write is None:
            row = await (await conn.execute(spec.remove, params)).fetchone()
            operation, parameters = "acls.remove", {"owner": owner}
        else:
            row = await (await conn.execute(spec.add, {**params, "write": write})).fetchone()
            operation, parameters = "acls.add", {"owner": owner, "write": write}
        assert row is not None  # the row was read in this transaction
        await record_access(
            conn,
            access,
            operation,
            ActionKind.UPDATE,
            f"{kind}/{path}",
            parameters=parameters,
        )
        return dict(row[0])


async def add_acl(
    pool: AsyncConnectionPool, access: Access, kind: str, path: str, owner: str, write: bool
) -> dict[str, bool]:
    """Grant ``owner`` (``u/x`` or ``g/y``) read (``write=False``) or write access; returns
    the new map. Effective at once: access is computed per request."""
    return await _change(pool, access, kind, path, owner, write)


async def remove_acl(
    pool: AsyncConnectionPool, access: Access, kind: str, path: str, owner: str
) -> dict[str, bool]:
    """Take ``owner``'s entry out of the item's ACL; returns the new map."""
    return await _change(pool, access, kind, path, owner, None)
