"""Waiting for a job's result: woken by the process's notification connection (which usually
carries the result itself), the database asked directly every few seconds and whenever
notifications may have been missed.

A flow with an ``early_return`` step answers its waiters with that step's result as soon as
the step succeeds (notified with the status :data:`EARLY_RETURN`, and kept in
``flow_early_result`` for a waiter that arrives later), while the flow goes on to its end.

A stopping process answers its waiters before it closes (:class:`Waiters`): each wait still
under way is interrupted and raises :class:`ServerStopping`, which names the job."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Iterator
from uuid import UUID

from psycopg_pool import AsyncConnectionPool

from gristmill.db.queries import Q
from gristmill.errors import GristmillError, Unavailable
from gristmill.queue.enqueue import count_queued
from gristmill.queue.notify import JobDone, Notifier
from gristmill.queue.rows import completed_result
from gristmill.queue.states import JobStatus

__all__ = [
    "EARLY_RETURN",
    "ServerStopping",
    "WaitTimeout",
    "Waiters",
    "check_queue_limit",
    "early_result",
    "wait_for_completion",
    "waiters_of",
]

_STATUSES = frozenset(JobStatus)

#: The status of a ``gristmill_job_done`` notification carrying a flow's early result.
EARLY_RETURN = "early_return"


class WaitTimeout(GristmillError):
    """The job did not finish within the wait; it keeps going."""


class ServerStopping(Unavailable):
    """The process stops before the job finished: the caller gets the job's id, to fetch its
    result later (from another server, or this one once restarted)."""

    def __init__(self, workspace_id: str, job_id: UUID) -> None:
        self.job_id = job_id
        super().__init__(
            f"Service unavailable: the server is stopping before job {job_id} finished; the "
            "job is not lost (it goes on, or goes back to the queue and runs again); fetch "
            "its result later from "
            f"/api/w/{workspace_id}/jobs_u/completed/get_result_maybe/{job_id}"
        )


#: The waiters of each process's platform, found through the notification connection every
#: wait uses: any caller of :func:`wait_for_completion` is one, with nothing to pass.
_WAITERS: weakref.WeakKeyDictionary[Notifier, Waiters] = weakref.WeakKeyDictionary()


def waiters_of(notifier: Notifier) -> Waiters:
    """The callers waiting for results through ``notifier`` (one platform's)."""
    waiters = _WAITERS.get(notifier)
    if waiters is None:
        waiters = _WAITERS[notifier] = Waiters()
    return waiters


class Waiters:
    """The callers of one process waiting for a job's result, so that a stop can answer them
    all at once (:meth:`release`) rather than drop their connections.

    A released wait is interrupted by cancelling its task, whatever it awaits: a
    notification, or a read of the database that an outage would make hang."""

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Task[object], UUID] = {}
        self._interrupted: set[asyncio.Task[object]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.released = False

    def __len__(self) -> int:
        return len(self._waiting)

    @contextlib.contextmanager
    def waiting(self, workspace_id: str, job_id: UUID) -> Iterator[None]:
        """Count the current task as waiting for ``job_id`` while the block runs; a release
        meanwhile (or before) raises :class:`ServerStopping` out of it."""
        if self.released:
            raise ServerStopping(workspace_id, job_id)
        task = asyncio.current_task()
        assert task is not None
        self._waiting[task] = job_id
        self._idle.clear()
        try:
            yield
        except asyncio.CancelledError:
            # Ours only: a cancellation from elsewhere (as well) goes on.
            if task in self._interrupted and task.uncancel() == 0:
                raise ServerStopping(workspace_id, job_id) from None
            raise
        finally:
            self._interrupted.discard(task)
            del self._waiting[task]
            if not self._waiting:
                self._idle.set()

    def release(self) -> None:
        """Interrupt every wait under way, and refuse those that would start."""
        self.released = True
        for task in self._waiting:
            if task not in self._interrupted:
                self._interrupted.add(task)
                task.cancel()

    async def idle(self) -> None:
        """Return once no caller waits."""
        await self._idle.wait()


async def check_queue_limit(
    pool: AsyncConnectionPool, workspace_id: str, limit: int | None
) -> None:
    """Refuse (:class:`Unavailable`) a synchronous run while more than ``limit`` jobs of the
    workspace wait for a worker (``QUEUE_LIMIT_WAIT_RESULT``)."""
    if limit is None:
        return
    async with pool.connection() as conn:
        count = await count_queued(conn, workspace_id)
    if count > limit:
        raise Unavailable(
            f"Number of queued job is too high: {count} > {limit} (QUEUE_LIMIT_WAIT_RESULT); "
            "retry later"
        )


async def wait_for_completion(
    pool: AsyncConnectionPool,
    notifier: Notifier,
    workspace_id: str,
    job_id: UUID,
    timeout_s: float,
    *,
    future: asyncio.Future[JobDone | None] | None = None,
) -> JobDone:
    """Wait until the job completes; return its status and result JSON text.

    ``future`` is the waiter registered before the job was queued (so that even an instant
    result is seen); without it one is registered now and the database is read at once.
    Raise :class:`WaitTimeout` after ``timeout_s``, and :class:`ServerStopping` when the
    process stops first (``waiters_of(notifier)`` released).
    """
    try:
        with waiters_of(notifier).waiting(workspace_id, job_id):
            return await _wait(pool, notifier, workspace_id, job_id, timeout_s, future)
    except ServerStopping:
        if future is not None:
            notifier.forget(str(job_id), future)
        raise


async def _wait(
    pool: AsyncConnectionPool,
    notifier: Notifier,
    workspace_id: str,
    job_id: UUID,
    timeout_s: float,
    future: asyncio.Future[JobDone | None] | None,
) -> JobDone:
    key = str(job_id)
    deadline = time.monotonic() + timeout_s
    while True:
        if future is None:
            future = notifier.expect_done(key)
            check_now = True
        else:
            check_now = False
        try:
            if not check_now:
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    # Awaited directly (no wait_for: no extra task or shield between the
                    # notification and this handler); the timer resolves it with None.
                    timer = asyncio.get_running_loop().call_later(
                        min(remaining, 5.0), _resolve_none, future
                    )
                    try:
                        done = await future
                    finally:
                        timer.cancel()
                    if done is not None and done.status in _STATUSES:
                        return done
                    if done is not None and done.status == EARLY_RETURN:
                        return JobDone(JobStatus.SUCCESS, done.result)
            # The early result first: it is what a synchronous caller of the flow gets,
            # even when the flow has ended since.
            early = await early_result(pool, workspace_id, job_id)
            if early is not None:
                return JobDone(JobStatus.SUCCESS, early)
            stored = await completed_result(pool, workspace_id, job_id)
        finally:
            notifier.forget(key, future)
            future = None
        if stored is not None:
            return JobDone(stored.status, stored.result)
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timeout after {timeout_s:g}s: job {job_id} is still queued or running and "
                "keeps going; fetch its result later from "
                f"/api/w/{workspace_id}/jobs_u/completed/get_result_maybe/{job_id}"
            )
        future = notifier.expect_done(key)


async def early_result(pool: AsyncConnectionPool, workspace_id: str, job_id: UUID) -> str | None:
    """The JSON text of a flow's early result (its ``early_return`` step's), if stored."""
    async with pool.connection() as conn:
        row = await (
            await conn.execute(
                Q["control_get_early_result"], {"id": job_id, "workspace_id": workspace_id}
            )
        ).fetchone()
    return None if row is None else str(row[0])


def _resolve_none(future: asyncio.Future[JobDone | None]) -> None:
    if not future.done():
        future.set_result(None)
