"""Which workspaces exist."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import NotFound

__all__ = ["Workspaces"]


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
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(Q["workspace_exists"], {"workspace_id": workspace_id})
            ).fetchone()
        if row is None:
            raise NotFound(f"workspace '{workspace_id}' does not exist")
        self._known.add(workspace_id)
        return workspace_id
