"""The server's background duties: finding jobs whose worker stopped answering."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from psycopg_pool import AsyncConnectionPool

from gristmill.config import Settings
from gristmill.db.pool import outages
from gristmill.db.queries import Q
from gristmill.queue.retention import purge_expired_jobs
from gristmill.worker.retry import TRANSIENT

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
    flow advancing (see gristmill.flows.engine), then the suspended flows timed out.

    Fair to outages: after this monitor lost the database (a failed check, or an outage its
    pool saw), it waits one full ``ZOMBIE_JOB_TIMEOUT`` of the database answering before
    it declares any job a zombie. Workers that were cut off by the same outage ping again
    meanwhile (a worker holding a result keeps its job alive and records it); only the jobs
    whose worker is really gone stay silent. The database's own restart is counted in the
    queries themselves (a ping is never older than the server's start)."""
    interval = max(1.0, min(15.0, settings.zombie_job_timeout_s / 4))
    grace = _OutageGrace(pool, settings.zombie_job_timeout_s)
    while True:
        await asyncio.sleep(interval)
        if not await grace.zombies_may_be_handled():
            continue
        try:
            await handle_zombies(pool, settings)
        except TRANSIENT as exc:
            grace.lost(exc)
            continue
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


class _OutageGrace:
    """When the monitor may declare zombies again after losing the database."""

    def __init__(self, pool: AsyncConnectionPool, timeout_s: float) -> None:
        self.pool = pool
        self.timeout_s = timeout_s
        self._outages = outages(pool)
        #: Lost: the database has not answered this monitor since (``True``); regained at
        #: (monotonic) ``float``; ``None``: no outage to wait out.
        self._state: bool | float | None = None

    def lost(self, exc: BaseException) -> None:
        if self._state is not True:
            log.warning("zombie checks paused: the database is unreachable (%s)", exc)
        self._state = True

    async def zombies_may_be_handled(self) -> bool:
        seen = outages(self.pool)
        if seen != self._outages:
            # The pool saw an outage since the last check, however short.
            self._outages = seen
            self._state = True
        if self._state is None:
            return True
        if self._state is True:
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(Q["database_answers"])
            except TRANSIENT:
                return False
            self._state = time.monotonic()
            log.warning(
                "the database answers again: no job is declared a zombie for %d s "
                "(ZOMBIE_JOB_TIMEOUT), time for the workers it cut off to ping again",
                self.timeout_s,
            )
            return False
        if time.monotonic() - self._state < self.timeout_s:
            return False
        self._state = None
        return True
