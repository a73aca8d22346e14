"""Workers: the loop that claims jobs, and everything a process's workers share.

A process runs ``NUM_WORKERS`` workers as tasks of one event loop. They share the process's
notification connection (an idle worker wakes when a job of its tags is queued; polling
every ``SLEEP_QUEUE`` ms is only the fallback), one heartbeat task, and a
:class:`~gristmill.worker.job.JobRunner` that runs each claimed job.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pluggy
from psycopg_pool import AsyncConnectionPool

from gristmill.config import Settings
from gristmill.db.pool import database_down, wait_until_up
from gristmill.queue.claim import Claim, claim_job, heartbeat
from gristmill.queue.notify import Notifier
from gristmill.queue.states import StopReason
from gristmill.runtimes import RuntimeRegistry
from gristmill.sandbox import RunPolicy
from gristmill.tasks import cancel_within
from gristmill.worker.capabilities import PING_EVERY_S, announce, withdraw, worker_tags
from gristmill.worker.job import REQUEUE_TIMEOUT_S, JobRunner, Running
from gristmill.worker.retry import TRANSIENT
from gristmill.workspace.secrets import Secrets

__all__ = ["Reservation", "WorkerPool", "worker_tags"]

log = logging.getLogger(__name__)

#: How often a worker paused by a database outage looks again (it is woken sooner when the
#: pool sees the database back).
_OUTAGE_RECHECK_S = 5.0


@dataclass
class _Slot:
    """One idle worker: woken by a queued job, or reserved to be handed one directly."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set while the worker sleeps (after finding nothing to claim).
    sleeping: bool = False
    reserved: bool = False
    decided: asyncio.Event = field(default_factory=asyncio.Event)
    job: dict[str, Any] | None = None


class Reservation:
    """An idle worker set aside for a job the caller is inserting; :meth:`hand` the job's
    claimed row to it, or :meth:`release` it."""

    def __init__(self, name: str, slot: _Slot) -> None:
        self.worker = name
        self._slot = slot

    def hand(self, job: dict[str, Any]) -> None:
        self._slot.job = job
        self._slot.decided.set()

    def release(self) -> None:
        self._slot.decided.set()


class WorkerPool:
    """The workers of one process."""

    def __init__(
        self,
        *,
        settings: Settings,
        pool: AsyncConnectionPool,
        notifier: Notifier,
        registry: RuntimeRegistry,
        plugins: pluggy.PluginManager,
        job_token_secret: bytes,
        tags: list[str],
        policy: RunPolicy | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.notifier = notifier
        self.registry = registry
        self.tags = tags
        #: The sandbox, network policy and caps of every job step (default: no sandbox).
        self.policy = policy or RunPolicy()
        self.runner = JobRunner(
            settings=settings,
            pool=pool,
            notifier=notifier,
            registry=registry,
            plugins=plugins,
            job_token_secret=job_token_secret,
            policy=self.policy,
            secrets=secrets or Secrets.from_settings(settings),
        )
        self.instance = f"wk-{settings.worker_group}-{socket.gethostname()}-{os.getpid()}"
        self.names = [f"{self.instance}-{i}" for i in range(settings.num_workers)]
        self._idle: dict[str, _Slot] = {}
        self._running: dict[str, Running] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._tag_set = set(tags)
        #: Claiming is paused by a database outage (logged once when it starts and ends).
        self._paused = False
        #: Set once the spooled results of an earlier process are recorded.
        self._replayed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self.settings.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.notifier.on_queue(self._on_queued)
        self.notifier.on_cancel(self._on_cancel)
        self.notifier.on_reconnect(self._wake_all)
        await self._announce()
        self._tasks.append(asyncio.create_task(self._keep_announcing(), name="announce"))
        for name in self.names:
            self._tasks.append(asyncio.create_task(self._work(name), name=name))
        if self.names:
            self._tasks.append(asyncio.create_task(self._replay_spool(), name="spool"))
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
            self._tasks.append(asyncio.create_task(self._collect_environments(), name="env-gc"))
        log.info(
            "%d workers started, taking tags: %s", len(self.names), ", ".join(self.tags) or "none"
        )

    async def stop(self, *, grace_s: float = 5.0, closing_s: float = REQUEUE_TIMEOUT_S + 2) -> None:
        """Stop claiming; give running jobs ``grace_s`` to finish, then stop them and put
        them back in the queue for another worker, all within ``closing_s`` more.

        Prompt even without a database: idle workers (perhaps waiting for a connection) are
        stopped at once, and past ``closing_s`` whatever still waits for the database (a
        requeue, a completion being recorded) is cancelled: its job stays running in the
        queue, and the zombie monitor restarts it."""
        loop = asyncio.get_running_loop()
        self._stopping = True
        self._wake_all()
        workers = [t for t in self._tasks if t.get_name() in self.names]
        busy = {running.worker for running in self._running.values()}
        for task in workers:
            if task.get_name() not in busy:
                task.cancel()
        pending = {t for t in workers if t.get_name() in busy}
        if pending:
            log.info("waiting up to %.1f s for %d running jobs", grace_s, len(pending))
            _, pending = await asyncio.wait(pending, timeout=max(0.0, grace_s))
        # The last quarter of the closing time (at least a moment) is the withdrawal's.
        closed_by = loop.time() + closing_s
        requeued_by = closed_by - max(closing_s / 4, min(0.2, closing_s))
        if pending:
            for running in self._running.values():
                running.stop(StopReason.SHUTDOWN)
            # Requeueing takes one statement; an unreachable database is not waited for.
            _, pending = await asyncio.wait(pending, timeout=max(0.0, requeued_by - loop.time()))
        if pending:
            log.warning(
                "%d jobs could not be put back in the queue in time; the zombie monitor will "
                "restart them",
                len(pending),
            )
        left = await cancel_within(self._tasks, max(0.05, requeued_by - loop.time()))
        if left:
            log.warning("%d worker tasks did not end in time; left behind", len(left))
        self._tasks.clear()
        # Not asyncio.timeout: a statement cancelled on a database that does not answer
        # takes psycopg seconds more to give up; this stop does not wait for that.
        withdrawing = asyncio.create_task(
            withdraw(self.pool, self.instance, timeout_s=REQUEUE_TIMEOUT_S)
        )
        done, _ = await asyncio.wait({withdrawing}, timeout=max(0.05, closed_by - loop.time()))
        if not done:
            withdrawing.cancel()
        elif not withdrawing.cancelled() and withdrawing.exception() is not None:
            log.warning("could not withdraw the workers: %s", withdrawing.exception())

    def ended_tasks(self) -> dict[str, BaseException | None]:
        """The tasks of this pool (worker loops, heartbeat, announcements; the spool's replay
        only if it failed) that ended while it runs, with what ended them: a pool with any is not healthy (the readiness
        check, gristmill.server.health)."""
        if self._stopping:
            return {}
        ended = {
            task.get_name(): None if task.cancelled() else task.exception()
            for task in self._tasks
            if task.done()
        }
        # The spool's replay is done once at the start: its normal end is no failure.
        if "spool" in ended and ended["spool"] is None:
            del ended["spool"]
        return ended

    async def _announce(self) -> None:
        await announce(
            self.pool,
            instance=self.instance,
            settings=self.settings,
            registry=self.registry,
            tags=self.tags,
            num_workers=len(self.names),
        )

    async def _keep_announcing(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY_S)
            await self._announce()

    # -- wake-ups -----------------------------------------------------------------------

    def _on_queued(self, tag: str) -> None:
        if tag in self._tag_set:
            self._wake_one()

    def _wake_one(self) -> None:
        for name, slot in self._idle.items():
            if not slot.wake.is_set() and not slot.reserved:
                slot.wake.set()
                del self._idle[name]
                return

    def _wake_all(self) -> None:
        for slot in self._idle.values():
            slot.wake.set()
        self._idle.clear()

    def reserve(self, tag: str) -> Reservation | None:
        """Set aside a sleeping worker that takes ``tag``, if there is one."""
        if self._stopping or tag not in self._tag_set:
            return None
        for name, slot in self._idle.items():
            if slot.sleeping and not slot.wake.is_set() and not slot.reserved:
                slot.reserved = True
                slot.wake.set()
                del self._idle[name]
                return Reservation(name, slot)
        return None

    def _on_cancel(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is not None:
            running.stop(StopReason.CANCEL)

    # -- the worker loop ----------------------------------------------------------------

    def _pause(self, exc: BaseException) -> None:
        """Log once per outage that the workers wait (not once per worker or attempt)."""
        if not self._paused:
            self._paused = True
            log.warning(
                "workers pause claiming: the database is unreachable (%s); they resume "
                "when it answers",
                exc,
            )

    async def _work(self, name: str) -> None:
        poll_s = self.settings.sleep_queue_ms / 1000
        # Results a previous process on this data directory kept are recorded first.
        await self._replayed.wait()
        while not self._stopping:
            if self._paused and not database_down(self.pool):
                self._paused = False
                log.warning("the database answers again: workers resume claiming")
            slot = _Slot()
            # Listed as idle before claiming: a job queued during the claim wakes it again.
            self._idle[name] = slot
            claim = Claim(None)
            try:
                claim = await self._claim(name)
            except TRANSIENT as exc:
                if database_down(self.pool):
                    # No claim while the database is away: wait for it (woken when the
                    # pool sees it again; a look every few seconds meanwhile).
                    self._idle.pop(name, None)
                    self._pause(exc)
                    await wait_until_up(self.pool, _OUTAGE_RECHECK_S)
                    continue
                log.warning("%s: cannot claim jobs (%s); retrying", name, exc)
            except Exception:
                log.exception("%s: claiming failed", name)
            job = claim.job
            if job is None:
                job = await self._sleep(slot, _idle_wait_s(poll_s, claim.next_due))
                if job is None:
                    continue
            self._idle.pop(name, None)
            if claim.job is not None:
                # Taken from the queue: more jobs may be waiting, let another idle worker
                # look. (A job handed over was inserted for this worker: it says nothing of
                # the queue, whose every job wakes an idle worker itself.)
                self._wake_one()
            running = Running(job["id"], name)
            self._running[str(job["id"])] = running
            try:
                await self.runner.run(running, job)
            except Exception:
                log.exception("%s: unexpected error running job %s", name, job["id"])
            finally:
                self._running.pop(str(job["id"]), None)
            # Let the caller waiting for that result (often in this process) answer before
            # this worker's next claim takes the event loop.
            await asyncio.sleep(0)
        self._idle.pop(name, None)

    async def _sleep(self, slot: _Slot, wait_s: float) -> dict[str, Any] | None:
        """Sleep until woken or ``wait_s``; return a job handed over meanwhile, if any."""
        slot.sleeping = True
        # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that
        # arrives as the event is set (the worker would then go on through a stop).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await slot.wake.wait()
        slot.sleeping = False
        if slot.reserved:
            await slot.decided.wait()
            return slot.job
        return None

    async def _claim(self, name: str) -> Claim:
        if not self.tags:
            return Claim(None)
        async with self.pool.connection() as conn:
            return await claim_job(conn, self.tags, name)

    # -- background duties -----------------------------------------------------------------

    async def _replay_spool(self) -> None:
        try:
            await self.runner.replay_spool()
        finally:
            self._replayed.set()

    async def _heartbeat(self) -> None:
        """Mark running jobs alive; stop those another worker took over or someone canceled
        (a cancel notification may have been missed)."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if not self._running:
                continue
            by_worker: dict[str, list[UUID]] = {}
            for running in list(self._running.values()):
                by_worker.setdefault(running.worker, []).append(running.job_id)
            for worker, ids in by_worker.items():
                if database_down(self.pool):
                    break  # no ping reaches it; the monitor waits for the workers' return
                try:
                    async with self.pool.connection() as conn:
                        beats = await heartbeat(conn, ids, worker)
                except TRANSIENT as exc:
                    log.warning("heartbeat failed (%s)", exc)
                    continue
                held = {str(beat.job_id): beat for beat in beats}
                for job_id in ids:
                    running = self._running.get(str(job_id))
                    if running is None or running.stop_reason is not None:
                        continue
                    beat = held.get(str(job_id))
                    if beat is None:
                        running.stop(StopReason.LOST)
                    elif beat.canceled_by is not None:
                        running.stop(StopReason.CANCEL)

    async def _collect_environments(self) -> None:
        """Remove dependency environments unused for long, or when the disk runs short."""
        while True:
            try:
                report = await asyncio.to_thread(
                    self.runner.environments.gc,
                    max_age_s=self.settings.env_max_age_days * 86400,
                    min_free_mb=self.settings.min_free_disk_space_mb,
                )
                if report.removed:
                    log.info(
                        "removed %d unused dependency environments; %.0f MB free",
                        len(report.removed),
                        report.free_mb,
                    )
            except OSError as exc:
                log.warning("could not collect dependency environments: %s", exc)
            await asyncio.sleep(self.settings.env_gc_every_s)


def _idle_wait_s(poll_s: float, due_at: dt.datetime | None) -> float:
    """Sleep until the next poll, or until a job scheduled for later becomes due."""
    if due_at is not None:
        due = (due_at.timestamp() - time.time()) + 0.005
        return max(0.0, min(poll_s, due))
    return poll_s
