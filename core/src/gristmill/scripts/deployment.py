"""Deployment of a script version: its dependencies locked by a dependency job when it is
saved, the lock (or the resolver's errors) stored on the version."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.runtimes import DependencyLocking, Runtime

__all__ = [
    "DEPENDENCY_TAG",
    "DeploymentState",
    "DeploymentStatus",
    "deployment_status",
    "lock_error_message",
    "needs_lock_job",
    "read_version_lock",
    "store_lock",
]

#: The tag of dependency jobs (locking a saved version), as in Windmill.
DEPENDENCY_TAG = "dependency"


def needs_lock_job(runtime: Runtime, content: str, lock: str | None) -> bool:
    """Whether saving this version queues a dependency job: its runtime locks dependencies,
    the script asks for some, and the request carries no lock of its own. Raises
    :class:`~gristmill.runtimes.ScriptError` for a malformed requirement annotation."""
    if lock is not None or not isinstance(runtime, DependencyLocking):
        return False
    return runtime.lock_inputs(content) is not None


def lock_error_message(logs: str) -> str:
    """Why a version whose dependency job failed cannot run."""
    return (
        "the dependencies of this script version could not be locked, so it cannot run; "
        "fix its requirements and save a new version. The resolver said:\n" + logs.strip()
    )


class DeploymentState(StrEnum):
    DEPLOYED = "deployed"
    LOCKING = "locking"
    FAILED = "failed"


@dataclass(frozen=True)
class DeploymentStatus:
    lock: str | None
    lock_error_logs: str | None
    job_id: UUID | None
    status: DeploymentState


async def deployment_status(
    pool: AsyncConnectionPool, workspace_id: str, row: dict[str, Any]
) -> DeploymentStatus:
    """Whether a version (``row``, as read by :func:`~gristmill.scripts.versions.fetch_by_hash`)
    is ready to run: its lock, or why locking failed, and its newest dependency job."""
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            Q["last_dependency_job"],
            {"workspace_id": workspace_id, "path": row["path"], "hash": row["hash"]},
        )
        job = await cur.fetchone()
    if row["lock_error_logs"] is not None:
        state = DeploymentState.FAILED
    elif row["lock"] is None and job is not None:
        state = DeploymentState.LOCKING
    else:
        state = DeploymentState.DEPLOYED
    return DeploymentStatus(row["lock"], row["lock_error_logs"], job["id"] if job else None, state)


async def store_lock(
    conn: psycopg.AsyncConnection,
    *,
    workspace_id: str,
    hash: int,
    lock: str | None,
    lock_error_logs: str | None,
) -> None:
    """Record the outcome of a version's dependency job."""
    await conn.execute(
        Q["set_script_lock"],
        {
            "workspace_id": workspace_id,
            "hash": hash,
            "lock": lock,
            "lock_error_logs": lock_error_logs,
        },
    )


async def read_version_lock(
    conn: psycopg.AsyncConnection, *, workspace_id: str, hash: int
) -> tuple[str | None, str | None] | None:
    """A version's lock and lock errors as stored now (``None``: no such version)."""
    row = await (
        await conn.execute(Q["get_script_lock"], {"workspace_id": workspace_id, "hash": hash})
    ).fetchone()
    return (row[0], row[1]) if row else None
