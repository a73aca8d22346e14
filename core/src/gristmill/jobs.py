"""Jobs in the database: queueing, cancelling, reading state and logs.

Each function is one named query (see ``db/sql/queries.sql``) on a given connection.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json, Jsonb

from gristmill.db.queries import Q

__all__ = [
    "DEPENDENCY_TAG",
    "CancelOutcome",
    "NewJob",
    "StaleScriptError",
    "cancel_job",
    "canceled_error",
    "format_hash",
    "get_job",
    "lock_error_message",
    "logs_since",
    "parse_hash",
    "push_failed_job",
    "push_job",
]


#: The tag of dependency jobs (locking a saved version), as in Windmill.
DEPENDENCY_TAG = "dependency"

_HASH = re.compile(r"[0-9a-fA-F]{16}")


def format_hash(value: int) -> str:
    """A script hash as Windmill writes it: the 8 big-endian bytes of an i64, in hex."""
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big").hex()


def parse_hash(text: str) -> int:
    """Inverse of :func:`format_hash`; raises ValueError with a clear message."""
    if not _HASH.fullmatch(text):
        raise ValueError(f"'{text}' is not a script hash (16 hexadecimal digits)")
    return int.from_bytes(bytes.fromhex(text), "big", signed=True)


@dataclass(frozen=True)
class NewJob:
    workspace_id: str
    kind: str
    tag: str
    args: Mapping[str, Any]
    created_by: str
    permissioned_as: str
    email: str
    language: str | None = None
    runnable_path: str | None = None
    runnable_hash: int | None = None
    raw_code: str | None = None
    raw_schema: Mapping[str, Any] | None = None
    #: A preview's own lock (the script's dependencies); ``None`` resolves them at run time.
    raw_lock: str | None = None
    priority: int | None = None
    timeout: int | None = None
    parent_job: UUID | None = None
    root_job: UUID | None = None
    trigger_kind: str | None = None
    scheduled_for: dt.datetime | None = None
    id: UUID = field(default_factory=uuid4)


def _job_params(job: NewJob, live_hash: int | None) -> dict[str, Any]:
    return {
        "live_hash": live_hash,
        "id": job.id,
        "workspace_id": job.workspace_id,
        "kind": job.kind,
        "runnable_path": job.runnable_path,
        "runnable_hash": job.runnable_hash,
        "language": job.language,
        "raw_code": job.raw_code,
        "raw_schema": Json(job.raw_schema) if job.raw_schema is not None else None,
        "raw_lock": job.raw_lock,
        "args": Jsonb(dict(job.args)),
        "tag": job.tag,
        "priority": job.priority,
        "timeout": job.timeout,
        "created_by": job.created_by,
        "permissioned_as": job.permissioned_as,
        "email": job.email,
        "parent_job": job.parent_job,
        "root_job": job.root_job,
        "trigger_kind": job.trigger_kind,
        "scheduled_for": job.scheduled_for,
    }


class StaleScriptError(LookupError):
    """The script version a job was built from is no longer the live one at its path."""


async def push_job(
    conn: psycopg.AsyncConnection, job: NewJob, *, live_hash: int | None = None
) -> UUID:
    """Queue ``job`` (its notification is sent when the transaction commits).

    With ``live_hash``, raise :class:`StaleScriptError` (inserting nothing) unless that
    script version is still the live one at its path.
    """
    row = await (await conn.execute(Q["push_job"], _job_params(job, live_hash))).fetchone()
    if row is None:
        raise StaleScriptError(job.runnable_path)
    return job.id


async def push_claimed_job(
    conn: psycopg.AsyncConnection,
    job: NewJob,
    *,
    worker: str,
    code: str,
    schema: Mapping[str, Any] | None,
    lock: str | None = None,
    lock_error_logs: str | None = None,
    live_hash: int | None = None,
) -> dict[str, Any]:
    """Insert ``job`` as already claimed by ``worker``; return what a claim would have.

    ``live_hash`` guards as in :func:`push_job`.
    """
    row = await (
        await conn.execute(Q["push_running_job"], {**_job_params(job, live_hash), "worker": worker})
    ).fetchone()
    if row is None:
        raise StaleScriptError(job.runnable_path)
    return {
        "id": job.id,
        "workspace_id": job.workspace_id,
        "kind": job.kind,
        "runnable_path": job.runnable_path,
        "runnable_hash": job.runnable_hash,
        "language": job.language,
        "code": code,
        "schema": schema,
        "lock": job.raw_lock if job.raw_code is not None else lock,
        "lock_error_logs": lock_error_logs,
        "args": dict(job.args),
        "timeout": job.timeout,
        "created_by": job.created_by,
        "permissioned_as": job.permissioned_as,
        "email": job.email,
        "parent_job": job.parent_job,
        "root_job": job.root_job,
        "started_at": row[0],
        "log_offset": 0,
    }


async def push_failed_job(conn: psycopg.AsyncConnection, job: NewJob, result_json: str) -> UUID:
    """Record ``job`` straight into the history as failed with ``result_json``."""
    params = _job_params(job, None)
    params["result"] = result_json
    await conn.execute(Q["push_failed_job"], params)
    return job.id


def lock_error_message(logs: str) -> str:
    """Why a version whose dependency job failed cannot run."""
    return (
        "the dependencies of this script version could not be locked, so it cannot run; "
        "fix its requirements and save a new version. The resolver said:\n" + logs.strip()
    )


def canceled_error(canceled_by: str | None, reason: str | None) -> str:
    """The result of a canceled job (Windmill's shape)."""
    reason = reason or "no reason given"
    by = canceled_by or "unknown"
    return json.dumps(
        {
            "error": {
                "name": "Canceled",
                "message": f"Job canceled: {reason} by {by}",
                "reason": reason,
                "canceler": by,
            }
        }
    )


@dataclass(frozen=True)
class CancelOutcome:
    #: ``canceled`` (it was queued: now in the history), ``stopping`` (its worker was asked
    #: to stop it), ``completed`` (too late) or ``not_found``.
    state: str


async def cancel_job(
    conn: psycopg.AsyncConnection,
    *,
    workspace_id: str,
    job_id: UUID,
    canceled_by: str,
    reason: str | None,
) -> CancelOutcome:
    params = {
        "id": job_id,
        "workspace_id": workspace_id,
        "canceled_by": canceled_by,
        "reason": reason,
        "result": canceled_error(canceled_by, reason),
    }
    if await (await conn.execute(Q["cancel_queued_job"], params)).fetchone():
        return CancelOutcome("canceled")
    if await (await conn.execute(Q["cancel_running_job"], params)).fetchone():
        return CancelOutcome("stopping")
    state = await (
        await conn.execute(Q["get_job_state"], {"id": job_id, "workspace_id": workspace_id})
    ).fetchone()
    if state and state[0] and state[2] is not None:
        return CancelOutcome("completed")
    # Claimed between the two statements above: ask its worker again.
    if (
        state
        and state[0]
        and state[1] is not None
        and await (await conn.execute(Q["cancel_running_job"], params)).fetchone()
    ):
        return CancelOutcome("stopping")
    return CancelOutcome("not_found")


async def get_job(
    conn: psycopg.AsyncConnection, *, workspace_id: str, job_id: UUID
) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(Q["get_job"], {"id": job_id, "workspace_id": workspace_id})
    return await cur.fetchone()


async def get_logs(conn: psycopg.AsyncConnection, job_id: UUID) -> str:
    row = await (await conn.execute(Q["get_logs"], {"id": job_id})).fetchone()
    return row[0] if row else ""


async def logs_since(conn: psycopg.AsyncConnection, job_id: UUID, offset: int) -> tuple[str, int]:
    """The log text after character ``offset``, and the offset after it."""
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
