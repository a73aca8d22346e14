"""A running job's output: kept in memory as it comes and written to ``job_log`` in batches
(every ``GRISTMILL_LOG_FLUSH_MS``), so that a job printing fast costs a write per batch,
not per line. What is not written yet goes with the job's completion."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from gristmill.queue.rows import append_log
from gristmill.worker.retry import TRANSIENT

__all__ = ["JobLog", "flush_periodically"]

log = logging.getLogger(__name__)


@dataclass
class JobLog:
    """A job's output: ``flushed`` characters are in the database, ``pending`` are not yet."""

    flushed: int
    pending: list[str] = field(default_factory=list)

    def write(self, text: str) -> None:
        self.pending.append(text)

    def take_pending(self) -> str:
        return "".join(self.pending)


async def flush_periodically(
    pool: AsyncConnectionPool, job_id: UUID, job_log: JobLog, interval_s: float
) -> None:
    """Write the pending output every ``interval_s`` until cancelled; a write the database
    refuses for now is tried again at the next turn (nothing is lost or written twice)."""
    while True:
        await asyncio.sleep(interval_s)
        if not job_log.pending:
            continue
        count = len(job_log.pending)
        text = "".join(job_log.pending[:count])
        try:
            async with pool.connection() as conn:
                await append_log(conn, job_id, job_log.flushed, text)
        except TRANSIENT as exc:
            log.warning("could not write logs of job %s yet (%s)", job_id, exc)
            continue
        del job_log.pending[:count]
        job_log.flushed += len(text)
