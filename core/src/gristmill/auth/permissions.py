"""Who may do what in a workspace: roles, groups, folders, per-item ACLs and token scopes.

Windmill's model (reference §7), checked in Python for single items and by the SQL function
``gm_can_read`` (migration 0005) in list queries, with the same rule:

* an **admin** of the workspace (or a super admin, in any workspace) may do everything;
* an item at ``u/<me>/...`` is its owner's; at ``g/<group>/...`` its group's members';
  at ``f/<folder>/...`` the folder's: its owners write, its ``extra_perms`` grant read
  (``false``) or write (``true``) to users and groups;
* an item's own ``extra_perms`` (``{"u/alice": true, "g/team": false}``) do the same;
* an **operator** runs and reads what is visible to them, and never writes (not even their
  own ``u/`` items): the one exception is the state of the job they started
  (:meth:`Access.can_write_state`).

Every member belongs to the group ``all``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import psycopg

from gristmill.auth.actor import Actor
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, NotFound
from gristmill.validation import short

__all__ = [
    "ALL_GROUP",
    "RUN_KINDS",
    "WORKSPACE_ID",
    "Access",
    "Role",
    "Scope",
    "load_access",
    "owner_of",
    "parse_scope",
    "scope_allows",
]

#: The group every member of a workspace belongs to.
ALL_GROUP = "all"
#: The database's CHECK on workspace ids.
WORKSPACE_ID = re.compile(r"[a-zA-Z0-9_-]+", re.ASCII)


class Role(StrEnum):
    ADMIN = "admin"
    DEVELOPER = "developer"
    OPERATOR = "operator"


def owner_of(path: str) -> str:
    """``u/alice`` of ``u/alice/x/y``: the first two segments of an item's path."""
    kind, _, rest = path.partition("/")
    return f"{kind}/{rest.partition('/')[0]}"


#: The kinds of runnable a ``jobs:run`` scope may name (Windmill's ``jobs:run:scripts:<path>``).
RUN_KINDS = ("scripts", "flows")
#: Windmill's older webhook scopes, ``run:script/<path>`` and ``run:flow/<path>``, which its
#: UI created for webhook-specific tokens before ``jobs:run:<kind>:<path>``.
LEGACY_RUN_SCOPES = {"run:script/": "scripts", "run:flow/": "flows"}


@dataclass(frozen=True)
class Scope:
    """A token scope, parsed: ``domain:action``, the runnable ``kind`` of a ``jobs:run``
    scope, and the path ``pattern`` (``None``: any path)."""

    domain: str
    action: str
    kind: str | None = None
    pattern: str | None = None


def parse_scope(scope: str) -> Scope | None:
    """``scope`` parsed; ``None`` for text of no known form (it then allows nothing)."""
    for prefix, kind in LEGACY_RUN_SCOPES.items():
        if scope.startswith(prefix):
            return Scope("jobs", "run", kind, scope[len(prefix) :] or None)
    parts = scope.split(":", 2)
    if len(parts) < 2:
        return None
    domain, action = parts[0], parts[1]
    rest = parts[2] if len(parts) == 3 else None
    kind = None
    if domain == "jobs" and action == "run" and rest is not None:
        head, _, tail = rest.partition(":")
        if head in RUN_KINDS:
            kind, rest = head, tail
    return Scope(domain, action, kind, rest if rest not in (None, "", "*") else None)


def scope_allows(
    scopes: tuple[str, ...] | None,
    domain: str,
    action: str,
    path: str | None,
    *,
    kind: str | None = None,
    follows_run: bool = False,
    any_path: bool = False,
) -> bool:
    """Whether token ``scopes`` (``None``: unrestricted) allow ``action`` on ``domain``.

    A scope is ``{domain}:{action}[:{path pattern}]``; ``*`` stands for any domain or
    action, a ``write`` scope also allows ``read``, and a path pattern may end with ``*``
    (``scripts:read:f/team/*``). A scope naming a path allows an operation that names no
    path only for listing (``read``).

    Running has a runnable ``kind`` (``scripts`` or ``flows``): ``jobs:run:scripts:<path>``
    (and Windmill's older ``run:script/<path>``) runs the script at that path only,
    ``jobs:run:flows:<path>`` (``run:flow/<path>``) the flow. ``follows_run`` marks the reads
    of one job by id (its state, logs, result): any ``jobs:run`` scope allows them, so that a
    webhook token can fetch the result of the job it started (Windmill's rule).
    ``any_path``: whether a scope allows the operation on some path (the path is not known
    yet: a run by hash; the caller checks again once it is).
    """
    if scopes is None:
        return True
    for text in scopes:
        scope = parse_scope(text)
        if scope is None or scope.domain not in ("*", domain):
            continue
        if scope.action not in ("*", action) and not (scope.action == "write" and action == "read"):
            if follows_run and action == "read" and scope.action == "run":
                return True
            continue
        if scope.kind is not None and action == "run" and kind != scope.kind:
            continue
        if scope.pattern is not None and not any_path:
            if path is None:
                if action != "read":
                    continue
            elif not fnmatch.fnmatchcase(path, scope.pattern):
                continue
        return True
    return False


@dataclass(frozen=True)
class Access:
    """What an actor may do in one workspace."""

    workspace_id: str
    actor: Actor
    role: Role
    groups: frozenset[str] = frozenset()
    #: Folders whose items the actor may read / write.
    folders_read: frozenset[str] = frozenset()
    folders_write: frozenset[str] = frozenset()
    #: Folders the actor owns (directly or through a group).
    folders_owned: frozenset[str] = frozenset()
    #: The path of the state the actor's job may write, set for a job token.
    state_path: str | None = field(default=None)

    @property
    def username(self) -> str:
        return self.actor.username

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def owners(self) -> list[str]:
        """``u/<me>`` and ``g/<group>`` of each group: the keys ACLs grant to."""
        return [f"u/{self.username}", *(f"g/{g}" for g in sorted(self.groups))]

    def sql_params(self) -> dict[str, Any]:
        """The parameters of ``gm_can_read`` in list queries."""
        return {
            "is_admin": self.is_admin,
            "owners": self.owners,
            "folders_read": sorted(self.folders_read),
        }

    def can_read(self, path: str, extra_perms: Mapping[str, Any] | None = None) -> bool:
        if self.is_admin:
            return True
        owners = set(self.owners)
        if owner_of(path) in owners:
            return True
        kind, _, rest = path.partition("/")
        if kind == "f" and rest.partition("/")[0] in self.folders_read:
            return True
        return any(key in owners for key in (extra_perms or {}))

    def can_write(self, path: str, extra_perms: Mapping[str, Any] | None = None) -> bool:
        if self.is_admin:
            return True
        if self.is_operator:
            return False
        owners = set(self.owners)
        if owner_of(path) in owners:
            return True
        kind, _, rest = path.partition("/")
        if kind == "f" and rest.partition("/")[0] in self.folders_write:
            return True
        return any(extra_perms.get(key) is True for key in owners) if extra_perms else False

    def can_write_state(self, path: str) -> bool:
        """Writing the state resource at ``path``: as any item, or the running job's own."""
        return self.state_path == path or self.can_write(path)

    def require_read(self, path: str, extra_perms: Mapping[str, Any] | None = None) -> None:
        if not self.can_read(path, extra_perms):
            raise Forbidden(f"{self.username} may not read {path!r} (ask its owner for access)")

    def require_write(self, path: str, extra_perms: Mapping[str, Any] | None = None) -> None:
        if not self.can_write(path, extra_perms):
            if self.is_operator:
                raise Forbidden(
                    f"{self.username} is an operator of workspace '{self.workspace_id}': "
                    "operators run and view, they do not create or edit"
                )
            raise Forbidden(
                f"{self.username} may not write {path!r}: only its owner, the owners of its "
                "folder, workspace admins and those its permissions name as writers may"
            )

    def require_create(self, path: str) -> None:
        """Creating an item at ``path`` (it has no ``extra_perms`` yet)."""
        self.require_write(path)

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden(
                f"this needs the admin role in workspace '{self.workspace_id}'; "
                f"{self.username} is {self.role.value}"
            )

    def require_not_operator(self) -> None:
        if self.is_operator:
            raise Forbidden(
                f"{self.username} is an operator of workspace '{self.workspace_id}': "
                "operators run and view, they do not create or edit"
            )


#: A row of ``gm_access``: workspace exists, role, disabled, groups, folders read, written,
#: owned.
AccessRow = tuple[Any, ...]


def check_workspace_id(workspace_id: str) -> None:
    """:class:`BadInput` for an id no workspace can have (and text with NUL cannot even be
    queried)."""
    if not WORKSPACE_ID.fullmatch(workspace_id):
        raise BadInput(
            f"invalid workspace id {short(workspace_id)!r}: ASCII letters, digits, '_' and '-' only"
        )


def access_from_row(actor: Actor, workspace_id: str, row: AccessRow) -> Access:
    """The actor's access from a ``gm_access`` row: :class:`NotFound` when the workspace
    does not exist (or is deleted), :class:`Forbidden` when the actor is not an enabled
    member. A super admin is an admin of every workspace."""
    exists, role, disabled, groups, readable, writable, owned = row
    if not exists:
        raise NotFound(f"workspace '{workspace_id}' does not exist")
    if (role is None or disabled) and not actor.super_admin:
        state = "disabled in" if role is not None else "not a member of"
        raise Forbidden(f"{actor.username} is {state} workspace '{workspace_id}'")
    return Access(
        workspace_id=workspace_id,
        actor=actor,
        role=Role.ADMIN if actor.super_admin else Role(role),
        groups=frozenset(groups) | {ALL_GROUP},
        folders_read=frozenset(readable),
        folders_write=frozenset(writable),
        folders_owned=frozenset(owned),
        state_path=actor.state_path,
    )


async def load_access(conn: psycopg.AsyncConnection, actor: Actor, workspace_id: str) -> Access:
    """The actor's access to ``workspace_id`` (one query; see :func:`access_from_row`).

    A job token acts as the member who started the job, with that member's role today (a
    removed or disabled member's jobs lose access).
    """
    check_workspace_id(workspace_id)
    row = await (
        await conn.execute(
            Q["get_access"],
            {"workspace_id": workspace_id, "email": actor.email, "username": actor.username},
        )
    ).fetchone()
    assert row is not None
    return access_from_row(actor, workspace_id, row)
