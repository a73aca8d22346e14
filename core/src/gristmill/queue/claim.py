"""The worker's side of the queue: claiming a due job, marking running jobs alive, and
moving a job to the history (or back to the queue). Each is one statement of
``sql/queries/queue.sql``; a job is completed only by the worker that still holds it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from gristmill.db.queries import Q
from gristmill.errors import GristmillError
from gristmill.queue.rows import append_log
from gristmill.queue.states import JobStatus

__all__ = [
    "Claim",
    "Heartbeat",
    "SecretsRead",
    "claim_job",
    "complete_job",
    "heartbeat",
    "requeue_job",
]


@dataclass(frozen=True)
class Claim:
    """A claimed job with all it needs to run; or none, and when the earliest job of the
    tags scheduled for later becomes due (``None``: no such job)."""

    job: dict[str, Any] | None
    next_due: dt.datetime | None = None


async def claim_job(conn: psycopg.AsyncConnection, tags: list[str], worker: str) -> Claim:
    """Take the most urgent due job of ``tags`` for ``worker``; with none due, learn when
    the next one will be (one statement either way)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q["claim_job"], {"tags": tags, "worker": worker})
    row = await cur.fetchone()
    if row is None:  # never: the statement always returns one row
        return Claim(None)
    next_due = row.pop("next_due")
    return Claim(row if row["id"] is not None else None, next_due)


@dataclass(frozen=True)
class Heartbeat:
    job_id: UUID
    #: Set when someone asked to cancel the job.
    canceled_by: str | None


async def heartbeat(
    conn: psycopg.AsyncConnection, job_ids: list[UUID], worker: str
) -> list[Heartbeat]:
    """Mark ``worker``'s running jobs alive; return those it still holds."""
    rows = await (await conn.execute(Q["heartbeat"], {"ids": job_ids, "worker": worker})).fetchall()
    return [Heartbeat(row[0], row[1]) for row in rows]


class SecretsRead(GristmillError):
    """The job read secrets: its log's end must be masked before it completes (nothing was
    written)."""


async def complete_job(
    conn: psycopg.AsyncConnection,
    *,
    job_id: UUID,
    worker: str,
    status: JobStatus,
    result_json: str,
    log_offset: int,
    logs: str,
    unmasked: bool = False,
    started_at: dt.datetime | None = None,
) -> bool:
    """Move the job to the history with its result and the end of its log, and notify its
    waiters; ``False`` when ``worker`` no longer holds it (nothing is written then).

    ``unmasked``: ``logs`` were not masked, the worker knowing of no secret the job read;
    raise :class:`SecretsRead` (writing nothing) if the job did read one. This saves the
    look-up of the secrets read before the completion, for the many jobs that read none.

    ``started_at``: the attempt's start, as its claim returned it; the job is completed
    only if this attempt still runs (``None``: whichever attempt ``worker`` holds)."""
    row = await (
        await conn.execute(
            Q["complete_job"],
            {
                "id": job_id,
                "worker": worker,
                "status": status,
                "result": result_json,
                "log_offset": log_offset,
                "logs": logs,
                "unmasked": unmasked,
                "started_at": started_at,
            },
        )
    ).fetchone()
    assert row is not None  # one row, always
    clean, done = row
    if not clean:
        raise SecretsRead(job_id)
    return bool(done)


async def requeue_job(
    conn: psycopg.AsyncConnection, *, job_id: UUID, worker: str, log_offset: int, logs: str
) -> None:
    """Give a running job back to the queue with the end of its log (one transaction)."""
    async with conn.transaction():
        await append_log(conn, job_id, log_offset, logs)
        await conn.execute(Q["requeue_job"], {"id": job_id, "worker": worker})
