"""What workers can run: the tags a process takes, its announcements (table ``worker_ping``),
and the API's reading of them.

The API uses what live workers announced to fail at once, with the worker's own explanation,
a job that no worker can run because its toolchain is missing everywhere, rather than leave
it queued forever.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from gristmill.config import Settings
from gristmill.db.queries import Q
from gristmill.runtimes import DependencyLocking, RuntimeRegistry
from gristmill.scripts.deployment import DEPENDENCY_TAG
from gristmill.worker.retry import TRANSIENT

__all__ = [
    "LIVE_WITHIN_S",
    "PING_EVERY_S",
    "WorkerCapabilities",
    "announce",
    "withdraw",
    "worker_tags",
]

log = logging.getLogger(__name__)

#: How often a worker process announces itself.
PING_EVERY_S = 10.0
#: A worker not heard from for this long is gone.
LIVE_WITHIN_S = 3 * PING_EVERY_S
#: How long the API trusts what it last read (a job check costs no query meanwhile).
_FRESH_S = 5.0


def worker_tags(settings: Settings, registry: RuntimeRegistry) -> list[str]:
    """The tags this process's workers take: ``WORKER_TAGS``, or the available runtimes and,
    when one of them locks dependencies, ``dependency`` (the lock jobs of saved versions)."""
    if settings.worker_tags:
        return list(settings.worker_tags)
    tags: list[str] = []
    for runtime in registry:
        toolchain = runtime.toolchain()
        if toolchain.available:
            tags.append(runtime.name)
        else:
            log.warning(
                "runtime %s is not available on this worker (%s); its jobs go to other workers",
                runtime.name,
                toolchain.message,
            )
    if any(isinstance(registry.get(tag), DependencyLocking) for tag in tags):
        tags.append(DEPENDENCY_TAG)
    return tags


async def announce(
    pool: AsyncConnectionPool,
    *,
    instance: str,
    settings: Settings,
    registry: RuntimeRegistry,
    tags: list[str],
    num_workers: int,
) -> None:
    """Tell the API which tags this process takes and which runtimes it cannot run."""
    taken = set(tags)
    unavailable = {
        runtime.name: runtime.toolchain().message
        for runtime in registry
        if runtime.name not in taken and not runtime.toolchain().available
    }
    try:
        async with pool.connection() as conn:
            await conn.execute(
                Q["worker_ping"],
                {
                    "worker_instance": instance,
                    "worker_group": settings.worker_group,
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "num_workers": num_workers,
                    "tags": tags if num_workers else [],
                    "unavailable": Jsonb(unavailable),
                },
            )
    except TRANSIENT as exc:
        log.warning("could not announce this worker (%s)", exc)


async def withdraw(pool: AsyncConnectionPool, instance: str, *, timeout_s: float) -> None:
    """This worker process stops: the API no longer counts on it."""
    async with pool.connection(timeout=timeout_s) as conn:
        await conn.execute(Q["worker_gone"], {"worker_instance": instance})


class WorkerCapabilities:
    """The API's view of the live workers, read at most every few seconds."""

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
