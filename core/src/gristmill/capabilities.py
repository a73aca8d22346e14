"""What the live workers can run, as they announce it (table ``worker_ping``).

Used by the API to fail at once, with the worker's own explanation, a job that no worker
can run because its toolchain is missing everywhere, rather than leave it queued forever.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q

__all__ = ["LIVE_WITHIN_S", "PING_EVERY_S", "WorkerCapabilities"]

#: How often a worker process announces itself.
PING_EVERY_S = 10.0
#: A worker not heard from for this long is gone.
LIVE_WITHIN_S = 3 * PING_EVERY_S
#: How long the API trusts what it last read (a job check costs no query meanwhile).
_FRESH_S = 5.0


class WorkerCapabilities:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self._pool = pool
        self._read_at = float("-inf")
        self._workers: list[dict[str, Any]] = []

    async def live_workers(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        if fresh or time.monotonic() - self._read_at > _FRESH_S:
            async with self._pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(Q["live_workers"], {"within_s": LIVE_WITHIN_S})
                self._workers = await cur.fetchall()
            self._read_at = time.monotonic()
        return self._workers

    async def refusal(self, tag: str) -> str | None:
        """Why no live worker can run jobs of ``tag``, when some worker knows the runtime
        but lacks its toolchain and none takes the tag; else ``None`` (the job can wait)."""
        workers = await self.live_workers()
        if any(tag in w["tags"] for w in workers):
            return None
        reasons = [w["unavailable"][tag] for w in workers if tag in w["unavailable"]]
        if not reasons:
            return None
        return (
            f"no worker can run {tag} jobs: {reasons[0]} "
            f"({len(reasons)} worker process(es) have the {tag} runtime but not its toolchain)"
        )
