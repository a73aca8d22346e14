"""Cancelling jobs: a queued one goes straight to the history, a running one is stopped by
its worker (notified at once), which records it as canceled."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import BadInput, JobErrorName, NotFound
from gristmill.validation import check_no_nul

__all__ = [
    "CancelState",
    "cancel_in_transaction",
    "cancel_job",
    "canceled_error",
    "read_cancel_request",
]


def canceled_error(canceled_by: str | None, reason: str | None) -> str:
    """The result of a canceled job (Windmill's shape)."""
    reason = reason or "no reason given"
    by = canceled_by or "unknown"
    return json.dumps(
        {
            "error": {
                "name": JobErrorName.CANCELED.value,
                "message": f"Job canceled: {reason} by {by}",
                "reason": reason,
                "canceler": by,
            }
        }
    )


class CancelState(StrEnum):
    #: It was queued: now in the history, canceled.
    CANCELED = "canceled"
    #: It was running: its worker was asked to stop it.
    STOPPING = "stopping"


def _params(
    workspace_id: str, job_id: UUID, canceled_by: str, reason: str | None
) -> dict[str, Any]:
    """The parameters of the cancel queries."""
    return {
        "id": job_id,
        "workspace_id": workspace_id,
        "canceled_by": canceled_by,
        "reason": reason,
        "result": canceled_error(canceled_by, reason),
    }


async def cancel_job(
    pool: AsyncConnectionPool,
    *,
    workspace_id: str,
    job_id: UUID,
    canceled_by: str,
    reason: str | None,
) -> CancelState:
    """Cancel ``job_id``; raise :class:`BadInput` when it has completed already and
    :class:`NotFound` when there is no such job."""
    check_no_nul("reason", reason)
    params = _params(workspace_id, job_id, canceled_by, reason)
    async with pool.connection() as conn:
        if await _cancel_flow(conn, params):
            return CancelState.CANCELED
        if await (await conn.execute(Q["cancel_queued_job"], params)).fetchone():
            return CancelState.CANCELED
        if await (await conn.execute(Q["cancel_running_job"], params)).fetchone():
            return CancelState.STOPPING
        state = await (
            await conn.execute(Q["get_job_state"], {"id": job_id, "workspace_id": workspace_id})
        ).fetchone()
        if state and state[0] and state[2] is not None:
            raise BadInput(f"queued job id {job_id} is already completed")
        # Claimed between the two statements above: ask its worker again.
        if (
            state
            and state[0]
            and state[1] is not None
            and await (await conn.execute(Q["cancel_running_job"], params)).fetchone()
        ):
            return CancelState.STOPPING
    raise NotFound(f"queued job id {job_id} does not exist")


async def _cancel_flow(conn: psycopg.AsyncConnection, params: dict[str, Any]) -> bool:
    """Cancel a running flow job, and with it its steps' jobs (queued ones at once, running
    ones by their workers); ``False`` when the job is no running flow. Under the flow's lock:
    no step completing meanwhile can push the next one."""
    async with conn.transaction():
        if not await (await conn.execute(Q["lock_flow_for_cancel"], params)).fetchone():
            return False
        await conn.execute(Q["cancel_flow_job"], params)
        children = await (
            await conn.execute(Q["flow_children_queued"], {"id": params["id"]})
        ).fetchall()
        for child_id, running in children:
            child = {**params, "id": child_id}
            # A child flow (a sub-flow, a parallel iteration) is held by no worker: it is
            # canceled like its parent, with its own children.
            if await _cancel_flow(conn, child):
                continue
            query = Q["cancel_running_job"] if running else Q["cancel_queued_job"]
            await conn.execute(query, child)
    return True


async def cancel_in_transaction(
    conn: psycopg.AsyncConnection,
    *,
    workspace_id: str,
    job_id: UUID,
    canceled_by: str,
    reason: str | None,
) -> None:
    """Cancel ``job_id`` if it is still queued or running, on ``conn`` (the flow engine
    cancels the children a flow stopped waiting for, in its own transaction); a job that
    completed already is left as it is."""
    params = _params(workspace_id, job_id, canceled_by, reason)
    if await _cancel_flow(conn, params):
        return
    if await (await conn.execute(Q["cancel_queued_job"], params)).fetchone():
        return
    await conn.execute(Q["cancel_running_job"], params)


async def read_cancel_request(
    pool: AsyncConnectionPool, job_id: UUID
) -> tuple[str | None, str | None]:
    """Who asked to cancel a running job, and why."""
    async with pool.connection() as conn:
        row = await (await conn.execute(Q["get_cancel_request"], {"id": job_id})).fetchone()
    return (row[0], row[1]) if row else (None, None)
