"""Job retention: completed jobs older than the retention period are deleted with their
results and logs, as Windmill's monitor does (``retention_period_secs``,
``JOB_RETENTION_SECS``).

The purge never holds up the queue: it deletes in small batches (one short transaction
each, rows other transactions hold skipped rather than waited for), pauses between them,
and does at most a bounded number per monitor pass, so that a large backlog is worked off
over several passes while claims and completions go on. One process at a time purges (a
session-level advisory lock), whatever the number of servers on the database. Queued and
running jobs are never candidates (they are not in the history), nor the steps of a flow
whose run is not over.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.config import Settings
from gristmill.db.queries import Q

__all__ = ["BATCH_SIZE", "LOCK_KEY", "Purge", "purge_expired_jobs", "retention_period_s"]

log = logging.getLogger(__name__)

#: Jobs deleted per statement: small enough that each transaction is short.
BATCH_SIZE = 1000
#: Batches per pass at most (a pass runs within the monitor's loop: it must end soon).
MAX_BATCHES = 20
#: The pause between two batches (s): room for the queue's own statements.
PAUSE_S = 0.05
#: The advisory lock of the purge (any constant unique to it: "gm-retention" in ASCII).
LOCK_KEY = 0x676D_7265_7465_6E74


@dataclass(frozen=True)
class Purge:
    """What one pass did: ``locked`` false when another process was purging."""

    deleted: int
    batches: int
    locked: bool


async def retention_period_s(conn: psycopg.AsyncConnection, settings: Settings) -> int:
    """The retention period in seconds (0: keep forever): the instance setting
    ``retention_period_secs`` when one is stored, else ``JOB_RETENTION_SECS``."""
    row = await (await conn.execute(Q["retention_period"])).fetchone()
    if row is not None:
        value = row[0]
        # A number, or a string of digits; a stored value that is no whole number of
        # seconds is ignored (a bad setting must not stop the monitor).
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        log.warning("instance setting retention_period_secs=%r is not a number of seconds", value)
    return settings.job_retention_s


async def purge_expired_jobs(
    pool: AsyncConnectionPool,
    settings: Settings,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    pause_s: float = PAUSE_S,
) -> Purge:
    """Delete the completed jobs older than the retention period, ``batch_size`` per
    statement, ``max_batches`` at most, unless another process holds the purge's lock."""
    async with pool.connection() as conn:
        retention_s = await retention_period_s(conn, settings)
        if retention_s <= 0:
            return Purge(0, 0, locked=True)
        row = await (await conn.execute(Q["retention_try_lock"], {"key": LOCK_KEY})).fetchone()
        if row is None or not row[0]:
            return Purge(0, 0, locked=False)
        deleted = batches = 0
        floor = dt.datetime.min.replace(tzinfo=dt.UTC)
        try:
            while batches < max_batches:
                if batches:
                    await asyncio.sleep(pause_s)
                cur = await conn.execute(
                    Q["retention_delete_batch"],
                    {"retention_s": retention_s, "floor": floor, "batch": batch_size},
                )
                result = await cur.fetchone()
                assert result is not None  # one row, always
                count, examined, reached = result
                batches += 1
                deleted += count
                if reached is not None:
                    floor = reached
                if examined < batch_size:  # none left (kept rows counted: they were seen)
                    break
        finally:
            await conn.execute(Q["retention_unlock"], {"key": LOCK_KEY})
    if deleted:
        log.info(
            "retention: deleted %d job(s) completed over %d s ago, in %d batch(es)",
            deleted,
            retention_s,
            batches,
        )
    return Purge(deleted, batches, locked=True)
