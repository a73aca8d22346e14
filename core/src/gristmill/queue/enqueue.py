"""Putting jobs into the queue.

One statement inserts a job into ``job`` (what never changes) and ``job_queue`` (the small hot
queue) and notifies its tag's workers at commit (see ``sql/queries/queue.sql``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.types.json import Json, Jsonb

from gristmill.db.queries import Q
from gristmill.errors import GristmillError, Unavailable
from gristmill.queue.idempotency import AlreadySubmitted, Submission, find_repeated
from gristmill.queue.states import JobKind

__all__ = [
    "NewJob",
    "StaleScriptError",
    "count_queued",
    "push_claimed_job",
    "push_failed_job",
    "push_job",
]


@dataclass(frozen=True)
class NewJob:
    workspace_id: str
    kind: JobKind
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
    #: What started the run: a schedule's path when ``trigger_kind`` is ``schedule``.
    trigger: str | None = None
    #: The flow module this job runs (``a``, ``b``...), when it is a flow step.
    flow_step_id: str | None = None
    #: The scopes of the token that started the job: its ``WM_TOKEN`` has no more.
    permissioned_scopes: tuple[str, ...] | None = None
    #: The audit entry's operation (``jobs.run.script``...), ``None``: not audited (internal
    #: jobs: dependency locks).
    audit_operation: str | None = None
    scheduled_for: dt.datetime | None = None
    id: UUID = field(default_factory=uuid4)
    #: The request's ``Idempotency-Key`` header: one job per key and workspace.
    idempotency_key: str | None = None
    #: The request named the version (``run/h``): a repeat of it must name the same one.
    by_hash: bool = False

    def submission(self) -> Submission:
        """What a repeat of this request must match (gristmill.queue.idempotency)."""
        return Submission(
            workspace_id=self.workspace_id,
            id=self.id,
            key=self.idempotency_key,
            permissioned_as=self.permissioned_as,
            kind=self.kind,
            runnable_path=self.runnable_path,
            args=self.args,
            runnable_hash=self.runnable_hash if self.by_hash else None,
            raw_code=self.raw_code,
        )


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
        "trigger": job.trigger,
        "flow_step_id": job.flow_step_id,
        "permissioned_scopes": list(job.permissioned_scopes)
        if job.permissioned_scopes is not None
        else None,
        "scheduled_for": job.scheduled_for,
        "audit_operation": job.audit_operation,
        "idempotency_key": job.idempotency_key,
    }


class StaleScriptError(GristmillError, LookupError):
    """The script version a job was built from is no longer the live one at its path."""


async def _inserted_nothing(
    conn: psycopg.AsyncConnection, job: NewJob, live_hash: int | None
) -> Exception:
    """Why a push inserted nothing: the request repeats a job (:class:`AlreadySubmitted`,
    or :class:`~gristmill.errors.RepeatMismatch` raised here), or the cached script version
    it was built from is stale."""
    existing = await find_repeated(conn, job.submission())
    if existing is not None:
        return AlreadySubmitted(existing)
    if live_hash is not None:
        return StaleScriptError(job.runnable_path)
    # The conflicting job was deleted between the insert and the read (retention).
    return Unavailable(f"job {job.id} could not be queued while its id or key was freed; retry")


async def push_job(
    conn: psycopg.AsyncConnection, job: NewJob, *, live_hash: int | None = None
) -> UUID:
    """Queue ``job`` (its notification is sent when the transaction commits).

    With ``live_hash``, raise :class:`StaleScriptError` (inserting nothing) unless that
    script version is still the live one at its path. A job id or Idempotency-Key taken
    already raises :class:`AlreadySubmitted` when the request repeats that job.
    """
    row = await (await conn.execute(Q["push_job"], _job_params(job, live_hash))).fetchone()
    if row is None:
        raise await _inserted_nothing(conn, job, live_hash)
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

    ``live_hash`` and a taken id or key are handled as in :func:`push_job`.
    """
    row = await (
        await conn.execute(Q["push_running_job"], {**_job_params(job, live_hash), "worker": worker})
    ).fetchone()
    if row is None:
        raise await _inserted_nothing(conn, job, live_hash)
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
        "trigger": job.trigger,
        "trigger_kind": job.trigger_kind,
        "flow_step_id": job.flow_step_id,
        "flow_job_id": row[1],
        "flow_path": row[2],
        "started_at": row[0],
        "log_offset": 0,
    }


async def push_failed_job(conn: psycopg.AsyncConnection, job: NewJob, result_json: str) -> UUID:
    """Record ``job`` straight into the history as failed with ``result_json``."""
    params = _job_params(job, None)
    params["result"] = result_json
    if await (await conn.execute(Q["push_failed_job"], params)).fetchone() is None:
        raise await _inserted_nothing(conn, job, None)
    return job.id


async def count_queued(conn: psycopg.AsyncConnection, workspace_id: str) -> int:
    """Jobs of a workspace waiting for a worker (not running)."""
    row = await (await conn.execute(Q["count_queued"], {"workspace_id": workspace_id})).fetchone()
    return row[0] if row else 0
