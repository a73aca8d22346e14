"""One LISTEN connection per process, dispatching Postgres notifications in memory.

Channels: ``gristmill_queue`` (payload: a tag with a new job), ``gristmill_job_done`` (a job
id that finished, followed by its status and result when the result is small) and
``gristmill_job_cancel`` (a running job id to stop) and ``gristmill_triggers`` (a trigger kind
whose triggers changed: every server reloads what it serves). Waiters for a
result and idle workers subscribe here instead of each holding a connection or polling.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NamedTuple

import psycopg

from gristmill.queue.trace import TRACE
from gristmill.tasks import cancel_and_wait

__all__ = ["CHANNELS", "JobDone", "Notifier"]

log = logging.getLogger(__name__)

CHANNELS = ("gristmill_queue", "gristmill_job_done", "gristmill_job_cancel", "gristmill_triggers")


class JobDone(NamedTuple):
    """A finished job's status and result (JSON text), as a notification carried them."""

    status: str
    result: str


class Notifier:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._job_waiters: dict[str, set[asyncio.Future[JobDone | None]]] = {}
        self._queue_callbacks: list[Callable[[str], None]] = []
        self._cancel_callbacks: list[Callable[[str], None]] = []
        self._trigger_callbacks: list[Callable[[str], None]] = []
        self._reconnect_callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self, *, timeout_s: float = 30.0) -> None:
        self._task = asyncio.create_task(self._run(), name="gristmill-notifier")
        await asyncio.wait_for(self.connected.wait(), timeout_s)

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def on_queue(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(tag)`` when a job with ``tag`` is queued."""
        self._queue_callbacks.append(callback)

    def on_cancel(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(job_id)`` when a running job is asked to stop."""
        self._cancel_callbacks.append(callback)

    def on_triggers(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(kind)`` when triggers of ``kind`` changed (in any process)."""
        self._trigger_callbacks.append(callback)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after the connection was lost and is back (events were missed)."""
        self._reconnect_callbacks.append(callback)

    def expect_done(self, job_id: str) -> asyncio.Future[JobDone | None]:
        """A future resolved when ``job_id`` finishes: with its outcome when the notification
        carried it, else ``None`` (also when notifications may have been missed): the waiter
        must then read the database. Call :meth:`forget` after."""
        future: asyncio.Future[JobDone | None] = asyncio.get_running_loop().create_future()
        self._job_waiters.setdefault(job_id, set()).add(future)
        return future

    def forget(self, job_id: str, future: asyncio.Future[JobDone | None]) -> None:
        waiters = self._job_waiters.get(job_id)
        if waiters is not None:
            waiters.discard(future)
            if not waiters:
                del self._job_waiters[job_id]

    def deliver_done(self, job_id: str, done: JobDone) -> None:
        """Resolve this process's waiters for ``job_id`` now, without waiting for the
        database's notification (used by workers when they record a result)."""
        self._resolve(job_id, done)

    def _resolve(self, job_id: str, done: JobDone | None = None) -> None:
        waiters = self._job_waiters.pop(job_id, ())
        if waiters and TRACE.enabled:
            TRACE.mark(job_id, "notified")
        for future in waiters:
            if not future.done():
                future.set_result(done)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == "gristmill_job_done":
            job_id, _, rest = payload.partition(" ")
            done = None
            if rest:
                status, _, result = rest.partition(" ")
                done = JobDone(status, result)
            self._resolve(job_id, done)
        elif channel == "gristmill_queue":
            for callback in self._queue_callbacks:
                callback(payload)
        elif channel == "gristmill_job_cancel":
            for callback in self._cancel_callbacks:
                callback(payload)
        elif channel == "gristmill_triggers":
            for callback in self._trigger_callbacks:
                callback(payload)

    async def _run(self) -> None:
        delay = 0.1
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")  # type: ignore[arg-type]
                    self.connected.set()
                    delay = 0.1
                    if not first:
                        log.warning("notification connection restored")
                        self._after_gap()
                    first = False
                    async for notification in conn.notifies():
                        self._dispatch(notification.channel, notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped connection must never end the listener
                self.connected.clear()
                log.warning("notification connection lost (%s); reconnecting in %.1f s", exc, delay)
                self._after_gap()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _after_gap(self) -> None:
        """Notifications may have been missed: every waiter re-checks, every worker polls."""
        for job_id in list(self._job_waiters):
            self._resolve(job_id)
        for callback in self._reconnect_callbacks:
            callback()
