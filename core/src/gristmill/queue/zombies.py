"""The server's background duties: finding jobs whose worker stopped answering."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from gristmill.config import Settings
from gristmill.db.queries import Q
from gristmill.queue.retention import purge_expired_jobs

__all__ = ["handle_zombies", "run_monitor"]

log = logging.getLogger(__name__)


async def handle_zombies(pool: AsyncConnectionPool, settings: Settings) -> int:
    """Restart (or fail, with ``RESTART_ZOMBIE_JOBS=false``) running jobs whose heartbeat is
    older than ``ZOMBIE_JOB_TIMEOUT``; return how many."""
    query = Q["restart_zombies"] if settings.restart_zombie_jobs else Q["fail_zombies"]
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(query, {"timeout_s": settings.zombie_job_timeout_s})
        ).fetchall()
    for row in rows:
        action = "restarted" if settings.restart_zombie_jobs else "failed"
        log.warning(
            "job %s: its worker stopped answering for over %d s; %s",
            row[0],
            settings.zombie_job_timeout_s,
            action,
        )
    return len(rows)


class _Flows(Protocol):
    async def sweep(self) -> int: ...

    async def sweep_suspended(self) -> int: ...


async def run_monitor(
    pool: AsyncConnectionPool, settings: Settings, *, flows: _Flows | None = None
) -> None:
    """Every few seconds: the zombie jobs, then the flows whose step completed without the
    flow advancing (see gristmill.flows.engine), then the suspended flows timed out."""
    interval = max(1.0, min(15.0, settings.zombie_job_timeout_s / 4))
    while True:
        await asyncio.sleep(interval)
        try:
            await handle_zombies(pool, settings)
        except Exception as exc:  # the monitor must outlive database hiccups
            log.warning("zombie check failed: %s", exc)
        if flows is not None:
            try:
                advanced = await flows.sweep()
                if advanced:
                    log.warning("%d stalled flow(s) advanced by the monitor", advanced)
            except Exception as exc:
                log.warning("flow sweep failed: %s", exc)
            try:
                await flows.sweep_suspended()  # suspended flows past their timeout
            except Exception as exc:
                log.warning("suspended flows sweep failed: %s", exc)
        try:  # completed jobs past the retention period (a bounded number per pass)
            await purge_expired_jobs(pool, settings)
        except Exception as exc:
            log.warning("job retention failed: %s", exc)
