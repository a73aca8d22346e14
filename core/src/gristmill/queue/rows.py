"""Reading jobs: one job with its queue or history state, its logs, its result, and lists.

A job is in ``job`` (what never changes) plus exactly one of ``job_queue`` (queued or
running) and ``job_completed`` (the history); its output is in ``job_log`` chunks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q, like_prefix
from gristmill.errors import BadInput, NotFound
from gristmill.queue.states import JobStatus
from gristmill.validation import INT4_MAX, check_int, check_page, check_text_fields

if TYPE_CHECKING:
    from gristmill.auth.permissions import Access

__all__ = [
    "CompletedResult",
    "JobQuery",
    "JobState",
    "append_log",
    "can_see_job",
    "completed_result",
    "fetch_job",
    "get_logs",
    "job_progress",
    "job_state",
    "list_jobs",
    "list_params_for",
    "logs_since",
    "root_job_id",
    "set_job_progress",
]


def _job_not_found(job_id: UUID) -> NotFound:
    return NotFound(f"Job not found at name {job_id}")


def can_see_job(access: Access | None, permissioned_as: str, runnable_path: str | None) -> bool:
    """Whether the caller may see a job: admins see all; others the jobs run as them or one
    of their groups, and the runs of the items they may read (the rule of ``list_jobs``).
    ``None``: an internal caller, who sees all."""
    if access is None or access.is_admin or permissioned_as in access.owners:
        return True
    return runnable_path is not None and access.can_read(runnable_path)


async def fetch_job(
    pool: AsyncConnectionPool, workspace_id: str, job_id: UUID, access: Access | None = None
) -> dict[str, Any]:
    """A job with its queue or history columns; :class:`NotFound` when there is none, or
    the caller (``access``) may not see it (an invisible job is not revealed)."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(Q["get_job"], {"id": job_id, "workspace_id": workspace_id})
        row = await cur.fetchone()
    if row is None or not can_see_job(access, row["permissioned_as"], row["runnable_path"]):
        raise _job_not_found(job_id)
    return row


async def root_job_id(
    pool: AsyncConnectionPool, workspace_id: str, job_id: UUID, access: Access | None = None
) -> UUID:
    """The root of a job's parent chain (the job itself when it has no parent)."""
    await fetch_job(pool, workspace_id, job_id, access)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["get_job_chain"], {"id": job_id, "workspace_id": workspace_id})
        ).fetchone()
    return row[0] if row else job_id


async def set_job_progress(
    pool: AsyncConnectionPool, workspace_id: str, job_id: UUID, percent: int
) -> None:
    """Record the progress of a queued or running job; :class:`BadInput` when it has
    finished (its progress is final)."""
    check_int("percent", percent, 0, 100)
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["set_job_progress"],
                {"id": job_id, "workspace_id": workspace_id, "percent": percent},
            )
        ).fetchone()
    if row is None:
        raise BadInput(f"job {job_id} is not running: its progress can no longer change")


async def job_progress(pool: AsyncConnectionPool, job_id: UUID) -> int | None:
    async with pool.connection() as conn:
        row = await (await conn.execute(Q["get_job_progress"], {"id": job_id})).fetchone()
    return row[0] if row else None


async def get_logs(pool: AsyncConnectionPool, job_id: UUID) -> str:
    async with pool.connection() as conn:
        row = await (await conn.execute(Q["get_logs"], {"id": job_id})).fetchone()
    return row[0] if row else ""


async def logs_since(pool: AsyncConnectionPool, job_id: UUID, offset: int) -> tuple[str, int]:
    """The log text after character ``offset``, and the offset after it."""
    # Offsets are an integer column: a larger one is no position in any log.
    check_int("log_offset", offset, 0, INT4_MAX)
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(Q["get_logs_since"], {"id": job_id, "log_offset": offset})
        ).fetchall()
    if not rows:
        return "", offset
    parts = []
    end = offset
    for chunk_offset, content in rows:
        start = max(0, offset - chunk_offset)
        parts.append(content[start:])
        end = chunk_offset + len(content)
    return "".join(parts), end


async def append_log(
    conn: psycopg.AsyncConnection, job_id: UUID, log_offset: int, content: str
) -> None:
    """Store a chunk of a job's output at ``log_offset`` (a chunk stored twice is kept once)."""
    await conn.execute(
        Q["append_log"], {"id": job_id, "log_offset": log_offset, "content": content}
    )


@dataclass(frozen=True)
class CompletedResult:
    status: JobStatus
    #: The result as JSON text, exactly as stored (never parsed and serialized again).
    result: str


async def completed_result(
    pool: AsyncConnectionPool, workspace_id: str, job_id: UUID, access: Access | None = None
) -> CompletedResult | None:
    """A finished job's status and result; ``None`` while it is queued or running (or when
    there is no such job); :class:`NotFound` when the caller may not see it."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["get_completed"], {"id": job_id, "workspace_id": workspace_id})
        ).fetchone()
    if row is None:
        return None
    if not can_see_job(access, row[2], row[3]):
        raise _job_not_found(job_id)
    return CompletedResult(JobStatus(row[0]), row[1] if row[1] is not None else "null")


@dataclass(frozen=True)
class JobState:
    running: bool
    #: Set once the job has finished.
    completed: CompletedResult | None


async def job_state(
    pool: AsyncConnectionPool, workspace_id: str, job_id: UUID, access: Access | None = None
) -> JobState:
    """Whether a job runs, or how it ended; :class:`NotFound` when there is no such job or
    the caller may not see it."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(Q["get_job_state"], {"id": job_id, "workspace_id": workspace_id})
        ).fetchone()
    if row is None or not row[0] or not can_see_job(access, row[4], row[5]):
        raise _job_not_found(job_id)
    _, running, status, result, _, _ = row
    completed = None
    if status is not None:
        completed = CompletedResult(JobStatus(status), result or "null")
    return JobState(bool(running), completed)


@dataclass(frozen=True)
class JobQuery:
    """Filters of a job list (``None``: no filter)."""

    page: int = 1
    per_page: int = 100
    queued_only: bool = False
    completed_only: bool = False
    path_exact: str | None = None
    path_start: str | None = None
    script_hash: int | None = None
    created_by: str | None = None
    created_before: dt.datetime | None = None
    created_after: dt.datetime | None = None
    running: bool | None = None
    success: bool | None = None
    job_kinds: list[str] | None = None
    tag: str | None = None
    parent_job: UUID | None = None
    trigger_kind: str | None = None
    #: The trigger's path (with ``trigger_kind``; a schedule's path for ``schedule_path``).
    trigger: str | None = None

    def __post_init__(self) -> None:
        check_page(self.page, self.per_page)
        check_text_fields(self)


def list_params_for(
    workspace_id: str, query: JobQuery, access: Access | None = None
) -> dict[str, Any]:
    """The parameters of the ``list_jobs`` statement for ``query`` as ``access`` sees it."""
    return {
        "is_admin": access is None or access.is_admin,
        "owners": access.owners if access is not None else [],
        "folders_read": sorted(access.folders_read) if access is not None else [],
        "workspace_id": workspace_id,
        "queued_only": query.queued_only,
        "completed_only": query.completed_only,
        "path_exact": query.path_exact,
        "path_like": like_prefix(query.path_start) if query.path_start else None,
        "script_hash": query.script_hash,
        "created_by": query.created_by,
        "created_before": query.created_before,
        "created_after": query.created_after,
        "running": query.running,
        "success": query.success,
        "job_kinds": query.job_kinds,
        "tag": query.tag,
        "parent_job": query.parent_job,
        "trigger_kind": query.trigger_kind,
        "trigger": query.trigger,
        "limit": query.per_page,
        "offset": (query.page - 1) * query.per_page,
    }


async def list_jobs(
    pool: AsyncConnectionPool, workspace_id: str, query: JobQuery, access: Access | None = None
) -> list[dict[str, Any]]:
    """Queued and running jobs first, then finished ones; newest first within each; only
    those the caller (``access``) may see (:func:`can_see_job`)."""
    params = list_params_for(workspace_id, query, access)
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        # Never a prepared statement: each filter left out (NULL) must fold away when the
        # statement is planned, so that the plan walks the index of the filters given. A
        # generic plan (what a prepared statement ends up with) keeps every `IS NULL OR`
        # and reads the whole history.
        await cur.execute(Q["list_jobs"], params, prepare=False)
        return await cur.fetchall()
