"""Repeated run requests: a run naming, by its ``job_id`` or its ``Idempotency-Key`` header, a
job submitted already gets that job, never a second one (docs/reliability.md "Idempotent
submission").

The push statements insert with ``ON CONFLICT DO NOTHING`` against the job's primary key and
the unique ``(workspace_id, idempotency_key)`` index (migration 0015). A first request, or two
racing ones, thus meet in the database itself: one inserts, the other inserts nothing (Postgres
makes it wait for the first to commit). Only a push that inserted nothing reads the jobs the
request names (:func:`find_repeated`) and compares (:func:`check_repeat`): a request without a
job id or key costs no statement more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg.rows import dict_row

from gristmill.db.queries import Q
from gristmill.errors import BadInput, GristmillError, RepeatMismatch
from gristmill.scripts.hashes import format_hash
from gristmill.validation import check_no_nul

__all__ = [
    "MAX_KEY_LENGTH",
    "AlreadySubmitted",
    "Submission",
    "check_key",
    "check_repeat",
    "find_repeated",
]

#: The longest ``Idempotency-Key`` taken (a UUID is 36 characters; Stripe takes 255 too).
MAX_KEY_LENGTH = 255


def check_key(key: str | None) -> str | None:
    """An ``Idempotency-Key`` as given, refused (400) when empty, too long or holding NUL."""
    if key is None:
        return None
    if not key.strip():
        raise BadInput("the Idempotency-Key header is empty: leave it out or give a key")
    if len(key) > MAX_KEY_LENGTH:
        raise BadInput(
            f"the Idempotency-Key header is {len(key)} characters long, over the limit of "
            f"{MAX_KEY_LENGTH} (a UUID is 36)"
        )
    check_no_nul("Idempotency-Key", key)
    return key


class AlreadySubmitted(GristmillError):
    """The request names a job submitted before, and matches it: ``job_id`` is its answer.

    Raised by the push functions (the caller answers with the job); never reaches a route."""

    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"job {job_id} was submitted already")
        self.job_id = job_id


@dataclass(frozen=True)
class Submission:
    """What a run request would create, as far as a repeat of it must match."""

    workspace_id: str
    id: UUID
    key: str | None
    permissioned_as: str
    kind: str
    runnable_path: str | None
    args: Mapping[str, Any]
    #: Compared only when the request named the version (``run/h``): a run by path retried
    #: after a new version was deployed is still the same run.
    runnable_hash: int | None = None
    raw_code: str | None = None
    raw_flow: Any = None


async def find_repeated(conn: psycopg.AsyncConnection, request: Submission) -> UUID | None:
    """After a push that inserted nothing: the id of the job ``request`` repeats (raising
    :class:`RepeatMismatch` when it does not match it), or ``None`` when it names none (the
    insert was skipped for another reason: a stale cached script)."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        Q["find_submitted_job"],
        {"id": request.id, "workspace_id": request.workspace_id, "idempotency_key": request.key},
    )
    return check_repeat(await cur.fetchall(), request)


def check_repeat(rows: Sequence[Mapping[str, Any]], request: Submission) -> UUID | None:
    """The job among ``rows`` (:func:`find_repeated`'s) that ``request`` repeats, or
    :class:`RepeatMismatch` saying what differs."""
    if not rows:
        return None
    if len(rows) > 1:
        other = next(r for r in rows if r["id"] != request.id)
        raise RepeatMismatch(
            f"job_id {request.id} and Idempotency-Key {request.key!r} name two different jobs "
            f"(the key was used by job {other['id']}): send one of them, or matching ones"
        )
    job = rows[0]
    named = (
        f"a job with id {job['id']} already exists"
        if job["id"] == request.id
        else f"Idempotency-Key {request.key!r} was already used by job {job['id']}"
    )
    # Another workspace's or another user's job is not described: its id is all the caller
    # gave or may learn.
    if job["workspace_id"] != request.workspace_id:
        raise RepeatMismatch(f"a job with id {request.id} already exists: choose another job_id")
    if job["permissioned_as"] != request.permissioned_as:
        what = "job_id" if job["id"] == request.id else "Idempotency-Key"
        raise RepeatMismatch(
            f"this {what} was already used by another user's run: choose another {what}"
        )
    differences = _differences(job, request)
    if differences:
        raise RepeatMismatch(
            f"{named} and this request does not match it: {'; '.join(differences)}. A retry "
            "must send the same runnable and arguments; a new run needs a new job_id or key"
        )
    return job["id"]


def _differences(job: Mapping[str, Any], request: Submission) -> list[str]:
    found: list[str] = []
    if job["kind"] != request.kind:
        found.append(f"it is a {job['kind']} job, this request a {request.kind}")
    if job["runnable_path"] != request.runnable_path:
        found.append(
            f"it runs {_path(job['runnable_path'])}, this request {_path(request.runnable_path)}"
        )
    if request.runnable_hash is not None and job["runnable_hash"] != request.runnable_hash:
        theirs = format_hash(job["runnable_hash"]) if job["runnable_hash"] is not None else None
        found.append(
            f"it runs version {theirs}, this request version {format_hash(request.runnable_hash)}"
        )
    if job["raw_code"] != request.raw_code:
        found.append("its code differs from this request's")
    if request.raw_flow is not None and _as_json(job["raw_flow"]) != _as_json(request.raw_flow):
        found.append("its flow differs from this request's")
    if job["idempotency_key"] is not None and request.key not in (None, job["idempotency_key"]):
        found.append(f"it was submitted with Idempotency-Key {job['idempotency_key']!r}")
    theirs, ours = job["args"] or {}, _as_json(dict(request.args))
    changed = sorted(
        name
        for name in theirs.keys() | ours.keys()
        if theirs.get(name, _NONE) != ours.get(name, _NONE)
    )
    if changed:
        found.append(f"its arguments differ ({', '.join(changed)})")
    return found


_NONE = object()


def _path(path: str | None) -> str:
    return path if path is not None else "code sent with its request"


def _as_json(value: Any) -> Any:
    """``value`` as the database gives it back (stored arguments were JSON: a tuple is a
    list, a non-string key a string)."""
    return orjson.loads(orjson.dumps(value))
