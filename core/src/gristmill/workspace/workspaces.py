"""Which workspaces exist."""

from __future__ import annotations

import re

from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import BadInput, NotFound
from gristmill.validation import short

__all__ = ["WORKSPACE_ID", "Workspaces"]

#: The database's CHECK on workspace ids.
WORKSPACE_ID = re.compile(r"[a-zA-Z0-9_-]+", re.ASCII)


class Workspaces:
    """Existence checks, remembering workspaces known to exist (one query per workspace per
    process: workspaces are not deleted while a process runs)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._known: set[str] = set()

    async def require(self, workspace_id: str) -> str:
        """``workspace_id`` if it exists; :class:`NotFound` otherwise."""
        if workspace_id in self._known:
            return workspace_id
        if not WORKSPACE_ID.fullmatch(workspace_id):
            # No such workspace can exist; and text with NUL cannot even be queried.
            raise BadInput(
                f"invalid workspace id {short(workspace_id)!r}: ASCII letters, digits, '_' "
                "and '-' only"
            )
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(Q["workspace_exists"], {"workspace_id": workspace_id})
            ).fetchone()
        if row is None:
            raise NotFound(f"workspace '{workspace_id}' does not exist")
        self._known.add(workspace_id)
        return workspace_id
