"""Workers: claim a job, let its runtime prepare it, run it, record its result and logs.

A process runs ``NUM_WORKERS`` workers as tasks of one event loop. They share the process's
notification connection (an idle worker wakes when a job of its tags is queued; polling
every ``SLEEP_QUEUE`` ms is only the fallback) and one heartbeat task.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pluggy
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from gristmill.auth import mint_job_token
from gristmill.capabilities import PING_EVERY_S
from gristmill.config import Settings
from gristmill.db.queries import Q
from gristmill.environments import EnvironmentCache
from gristmill.execution import execute, lock_job
from gristmill.jobs import DEPENDENCY_TAG, canceled_error, format_hash, lock_error_message
from gristmill.notify import JobDone, Notifier
from gristmill.runtime import (
    ARGS_FILE,
    DependencyLocking,
    JobContext,
    JobOutcome,
    RuntimeRegistry,
    UnknownRuntimeError,
    error_result,
)
from gristmill.sandbox import RunPolicy

__all__ = ["Reservation", "WorkerPool", "worker_tags"]

log = logging.getLogger(__name__)

# How long a stopping worker tries to give its running job back to the queue; past it, the
# zombie monitor will restart the job.
_REQUEUE_TIMEOUT_S = 5.0

# Errors that mean "the database is unreachable for now": retried, never fatal to a worker.
_TRANSIENT = (psycopg.OperationalError, PoolTimeout)


def worker_tags(settings: Settings, registry: RuntimeRegistry) -> list[str]:
    """The tags this process's workers take: ``WORKER_TAGS``, or the available runtimes and,
    when one of them locks dependencies, ``dependency`` (the lock jobs of saved versions)."""
    if settings.worker_tags:
        return list(settings.worker_tags)
    tags: list[str] = []
    for runtime in registry:
        toolchain = runtime.toolchain()
        if toolchain.available:
            tags.append(runtime.name)
        else:
            log.warning(
                "runtime %s is not available on this worker (%s); its jobs go to other workers",
                runtime.name,
                toolchain.message,
            )
    if any(isinstance(registry.get(tag), DependencyLocking) for tag in tags):
        tags.append(DEPENDENCY_TAG)
    return tags


@dataclass
class _JobLog:
    """A job's output: ``flushed`` characters are in the database, ``pending`` are not yet."""

    flushed: int
    pending: list[str] = field(default_factory=list)

    def write(self, text: str) -> None:
        self.pending.append(text)


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


@dataclass
class _Running:
    job_id: UUID
    worker: str
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    #: Why the process is being stopped early: "cancel", "lost" or "shutdown".
    stop_reason: str | None = None
    #: When each phase of the job ended (perf_counter), for the debug log.
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        self.marks.append((phase, time.perf_counter()))

    def timeline(self) -> str:
        parts = []
        for (_, before), (phase, at) in zip(self.marks, self.marks[1:], strict=False):
            parts.append(f"{phase} {(at - before) * 1000:.2f} ms")
        return ", ".join(parts)


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
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.notifier = notifier
        self.registry = registry
        self.plugins = plugins
        self.secret = job_token_secret
        self.tags = tags
        #: The sandbox, network policy and caps of every job step (default: no sandbox).
        self.policy = policy or RunPolicy()
        self.instance = f"wk-{settings.worker_group}-{socket.gethostname()}-{os.getpid()}"
        self.names = [f"{self.instance}-{i}" for i in range(settings.num_workers)]
        self._idle: dict[str, _Slot] = {}
        self._running: dict[str, _Running] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._tag_set = set(tags)
        self._cache_dirs: set[str] = set()
        self.environments = EnvironmentCache(settings.cache_dir / "envs")

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
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
            self._tasks.append(asyncio.create_task(self._collect_environments(), name="env-gc"))
        log.info(
            "%d workers started, taking tags: %s", len(self.names), ", ".join(self.tags) or "none"
        )

    async def stop(self, *, grace_s: float = 5.0) -> None:
        """Stop claiming; give running jobs ``grace_s`` to finish, then stop them and put
        them back in the queue for another worker. Prompt even without a database: idle
        workers (perhaps waiting for a connection) are stopped at once."""
        self._stopping = True
        self._wake_all()
        workers = [t for t in self._tasks if t.get_name() in self.names]
        busy = {running.worker for running in self._running.values()}
        for task in workers:
            if task.get_name() not in busy:
                task.cancel()
        pending = {t for t in workers if t.get_name() in busy}
        if pending:
            log.info("waiting up to %.0f s for %d running jobs", grace_s, len(pending))
            _, pending = await asyncio.wait(pending, timeout=grace_s)
        if pending:
            for running in self._running.values():
                running.stop_reason = "shutdown"
                running.cancel.set()
            # Requeueing takes one statement (with a bounded wait for a connection).
            _, pending = await asyncio.wait(pending, timeout=_REQUEUE_TIMEOUT_S + 2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(*_TRANSIENT):
            async with self.pool.connection(timeout=_REQUEUE_TIMEOUT_S) as conn:
                await conn.execute(Q["worker_gone"], {"worker_instance": self.instance})

    async def _announce(self) -> None:
        """Tell the API which tags this process takes and which runtimes it cannot run."""
        unavailable = {
            runtime.name: runtime.toolchain().message
            for runtime in self.registry
            if runtime.name not in self._tag_set and not runtime.toolchain().available
        }
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    Q["worker_ping"],
                    {
                        "worker_instance": self.instance,
                        "worker_group": self.settings.worker_group,
                        "hostname": socket.gethostname(),
                        "pid": os.getpid(),
                        "num_workers": len(self.names),
                        "tags": self.tags if self.names else [],
                        "unavailable": Jsonb(unavailable),
                    },
                )
        except _TRANSIENT as exc:
            log.warning("could not announce this worker (%s)", exc)

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
        if running is not None and running.stop_reason is None:
            running.stop_reason = "cancel"
            running.cancel.set()

    # -- the worker loop ----------------------------------------------------------------

    async def _work(self, name: str) -> None:
        poll_s = self.settings.sleep_queue_ms / 1000
        while not self._stopping:
            slot = _Slot()
            # Listed as idle before claiming: a job queued during the claim wakes it again.
            self._idle[name] = slot
            try:
                job = await self._claim(name)
            except _TRANSIENT as exc:
                log.warning("%s: cannot claim jobs (%s); retrying", name, exc)
                job = None
            except Exception:
                log.exception("%s: claiming failed", name)
                job = None
            if job is None:
                job = await self._sleep(slot, await self._idle_wait_s(poll_s))
                if job is None:
                    continue
            self._idle.pop(name, None)
            # More jobs may be waiting: let another idle worker look.
            self._wake_one()
            try:
                await self._execute(name, job)
            except Exception:
                log.exception("%s: unexpected error running job %s", name, job["id"])
            # Let the caller waiting for that result (often in this process) answer before
            # this worker's next claim takes the event loop.
            await asyncio.sleep(0)
        self._idle.pop(name, None)

    async def _sleep(self, slot: _Slot, wait_s: float) -> dict[str, Any] | None:
        """Sleep until woken or ``wait_s``; return a job handed over meanwhile, if any."""
        slot.sleeping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slot.wake.wait(), wait_s)
        slot.sleeping = False
        if slot.reserved:
            await slot.decided.wait()
            return slot.job
        return None

    async def _idle_wait_s(self, poll_s: float) -> float:
        """Sleep until the next poll, or until a job scheduled for later becomes due."""
        try:
            async with self.pool.connection() as conn:
                row = await (
                    await conn.execute(Q["next_scheduled"], {"tags": self.tags})
                ).fetchone()
        except _TRANSIENT:
            return poll_s
        if row and row[0] is not None:
            due = (row[0].timestamp() - time.time()) + 0.005
            return max(0.0, min(poll_s, due))
        return poll_s

    async def _claim(self, name: str) -> dict[str, Any] | None:
        if not self.tags:
            return None
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(Q["claim_job"], {"tags": self.tags, "worker": name})
            return await cur.fetchone()

    # -- running one job -----------------------------------------------------------------

    async def _execute(self, name: str, job: dict[str, Any]) -> None:
        job_id: UUID = job["id"]
        key = str(job_id)
        running = _Running(job_id, name)
        running.mark("claimed")
        self._running[key] = running
        job_log = _JobLog(flushed=job["log_offset"])
        if job_log.flushed:
            job_log.write("\n[gristmill] previous attempt interrupted; the job starts again\n")
        job_dir = self.settings.jobs_dir / key
        flusher = asyncio.create_task(self._flush_logs_periodically(job_id, job_log))
        try:
            outcome, status = await self._run_job(name, job, job_dir, job_log, running)
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            self._running.pop(key, None)
        if running.stop_reason == "shutdown":
            await self._requeue(name, job_id, job_log)
        elif running.stop_reason == "lost":
            log.warning(
                "job %s was taken over by another worker; this run's result is dropped", key
            )
        else:
            await self._complete(name, job_id, status, outcome.result_json, job_log)
        running.mark("complete")
        if not self.settings.keep_job_dir:
            # Soon, not now: the caller waiting for this result need not wait for the disk
            # (and a thread would contend for the GIL at the worst moment).
            asyncio.get_running_loop().call_later(
                0.05, functools.partial(shutil.rmtree, job_dir, ignore_errors=True)
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s: %s", key, running.timeline())

    async def _run_job(
        self,
        name: str,
        job: dict[str, Any],
        job_dir: Path,
        job_log: _JobLog,
        running: _Running,
    ) -> tuple[JobOutcome, str]:
        """Prepare and run the job; return its outcome and status."""
        if job["code"] is None:
            return _failure("ScriptNotFound", "the script version of this job no longer exists")
        try:
            runtime = self.registry.get(job["language"])
        except UnknownRuntimeError as exc:
            return _failure("UnknownLanguage", str(exc))
        timeout_s = float(
            min(job["timeout"] or self.settings.job_timeout_s, self.settings.job_timeout_s)
        )
        # Small synchronous writes: cheaper than a thread hop on the job's critical path.
        job_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        (job_dir / ARGS_FILE).write_bytes(orjson.dumps(job["args"]))
        ctx = JobContext(
            id=job["id"],
            workspace_id=job["workspace_id"],
            language=runtime.name,
            code=job["code"],
            args=job["args"],
            job_dir=job_dir,
            schema=job["schema"],
            script_path=job["runnable_path"],
            script_hash=format_hash(job["runnable_hash"])
            if job["runnable_hash"] is not None
            else None,
            timeout_s=timeout_s,
            cache_dir=self._cache_dir(runtime.name),
        )
        ctx = _with_env(ctx, self._job_env(job, ctx))
        if job["kind"] == "dependencies":
            return await self._lock_version(job, ctx, job_log, running)
        if isinstance(runtime, DependencyLocking):
            lock, errors = await self._version_lock(job)
            if errors is not None:
                return _failure("LockError", lock_error_message(errors))
            ctx = replace(ctx, lock=lock)
        execution = await execute(
            runtime,
            ctx,
            on_output=job_log.write,
            cancel=running.cancel,
            on_step=running.mark,
            environments=self.environments,
            policy=self.policy,
        )
        if execution.outcome is not None:
            return execution.outcome, "success" if execution.outcome.success else "failure"
        if running.stop_reason == "cancel":
            by, reason = await self._cancel_request(ctx.id)
            return JobOutcome(False, canceled_error(by, reason)), "canceled"
        # Shutdown or lost: the caller does not record this outcome.
        return JobOutcome(False, "null"), "failure"

    async def _version_lock(self, job: dict[str, Any]) -> tuple[str | None, str | None]:
        """The lock a job runs against, and the lock errors of its version. A version whose
        dependency job has not ended yet (or whose row the API had cached before it did)
        is read again; still without a lock, the job resolves one itself."""
        lock, errors = job["lock"], job["lock_error_logs"]
        if lock is None and errors is None and job["runnable_hash"] is not None:
            with contextlib.suppress(*_TRANSIENT):
                async with self.pool.connection() as conn:
                    row = await (
                        await conn.execute(
                            Q["get_script_lock"],
                            {"workspace_id": job["workspace_id"], "hash": job["runnable_hash"]},
                        )
                    ).fetchone()
                if row is not None:
                    lock, errors = row
        return lock, errors

    async def _lock_version(
        self, job: dict[str, Any], ctx: JobContext, job_log: _JobLog, running: _Running
    ) -> tuple[JobOutcome, str]:
        """A dependency job: lock the version's requirements; its completion stores the lock
        (or the resolver's output) on the version."""
        runtime = self.registry.get(job["language"])
        toolchain = runtime.toolchain()
        if not toolchain.available:
            outcome = await self._store_lock(job, None, toolchain.message)
            return outcome or _failure("ToolchainMissing", toolchain.message)
        locked = await lock_job(
            runtime, ctx, on_output=job_log.write, cancel=running.cancel, policy=self.policy
        )
        if locked.lock is None and locked.error is not None and locked.error.canceled:
            if running.stop_reason == "cancel":
                by, reason = await self._cancel_request(ctx.id)
                await self._store_lock(job, None, f"the dependency job was canceled: {reason}")
                return JobOutcome(False, canceled_error(by, reason)), "canceled"
            return JobOutcome(False, "null"), "failure"
        if locked.lock is not None:
            await self._store_lock(job, locked.lock, None)
            result = orjson.dumps(
                {"status": "Successful lock file generation", "lock": locked.lock}
            ).decode()
            return JobOutcome(True, result), "success"
        assert locked.error is not None and locked.error.outcome is not None
        logs = (
            locked.logs.strip()
            or orjson.loads(locked.error.outcome.result_json)["error"]["message"]
        )
        await self._store_lock(job, None, logs)
        return locked.error.outcome, "failure"

    async def _store_lock(
        self, job: dict[str, Any], lock: str | None, errors: str | None
    ) -> tuple[JobOutcome, str] | None:
        """Record a version's lock or lock errors; retried while the database is away."""
        params = {
            "workspace_id": job["workspace_id"],
            "hash": job["runnable_hash"],
            "lock": lock,
            "lock_error_logs": errors,
        }
        delay = 0.1
        for _ in range(8):
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(Q["set_script_lock"], params)
                return None
            except _TRANSIENT as exc:
                log.warning("cannot store the lock of job %s yet (%s)", job["id"], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return _failure("StoreError", "the lock could not be stored: the database is unreachable")

    async def _collect_environments(self) -> None:
        """Remove dependency environments unused for long, or when the disk runs short."""
        while True:
            try:
                report = await asyncio.to_thread(
                    self.environments.gc,
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

    def _cache_dir(self, runtime: str) -> Path:
        path = self.settings.cache_dir / runtime
        if runtime not in self._cache_dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._cache_dirs.add(runtime)
        return path

    def _job_env(self, job: dict[str, Any], ctx: JobContext) -> dict[str, str]:
        username = job["permissioned_as"].removeprefix("u/")
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(ctx.job_dir),
            "LANG": "C.UTF-8",
            "BASE_URL": self.settings.public_url,
            "WM_BASE_URL": self.settings.public_url,
            "BASE_INTERNAL_URL": self.settings.internal_url,
            "WM_WORKSPACE": job["workspace_id"],
            "WM_JOB_ID": str(job["id"]),
            "WM_JOB_PATH": job["runnable_path"] or "",
            "WM_EMAIL": job["email"],
            "WM_USERNAME": username,
            "WM_PERMISSIONED_AS": job["permissioned_as"],
            "WM_TOKEN": mint_job_token(
                self.secret, job_id=job["id"], email=job["email"], username=username
            ),
        }
        if job["runnable_path"]:
            env["WM_STATE_PATH"] = env["WM_STATE_PATH_NEW"] = f"{job['runnable_path']}/{username}"
        if job["root_job"]:
            env["WM_ROOT_FLOW_JOB_ID"] = str(job["root_job"])
        extra: dict[str, str] = {}
        # pluggy returns the last registered plugin's result first: reversed, later wins.
        for addition in reversed(self.plugins.hook.job_env(job=_with_env(ctx, env))):
            if addition:
                extra.update({str(k): str(v) for k, v in addition.items()})
        # The core's job variables win over plugins: a plugin cannot impersonate a job.
        return {**extra, **env}

    async def _cancel_request(self, job_id: UUID) -> tuple[str | None, str | None]:
        with contextlib.suppress(*_TRANSIENT):
            async with self.pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT canceled_by, canceled_reason FROM job_queue WHERE id = %s",
                        (job_id,),
                    )
                ).fetchone()
                if row:
                    return row[0], row[1]
        return None, None

    # -- logs, completion, heartbeats ------------------------------------------------------

    async def _flush_logs_periodically(self, job_id: UUID, job_log: _JobLog) -> None:
        interval = self.settings.log_flush_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if not job_log.pending:
                continue
            count = len(job_log.pending)
            text = "".join(job_log.pending[:count])
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(
                        Q["append_log"],
                        {"id": job_id, "log_offset": job_log.flushed, "content": text},
                    )
            except _TRANSIENT as exc:
                log.warning("could not write logs of job %s yet (%s)", job_id, exc)
                continue
            del job_log.pending[:count]
            job_log.flushed += len(text)

    async def _complete(
        self, name: str, job_id: UUID, status: str, result_json: str, job_log: _JobLog
    ) -> None:
        """Record the outcome; retried while the database is unreachable, never lost."""
        params = {
            "id": job_id,
            "worker": name,
            "status": status,
            "result": result_json,
            "log_offset": job_log.flushed,
            "logs": "".join(job_log.pending),
        }
        delay = 0.1
        rejected = False
        while True:
            try:
                async with self.pool.connection() as conn:
                    row = await (await conn.execute(Q["complete_job"], params)).fetchone()
                if row is None:
                    log.warning(
                        "job %s is no longer held by %s; its result is dropped", job_id, name
                    )
                else:
                    # A caller waiting in this process needs not wait for the notification.
                    self.notifier.deliver_done(
                        str(job_id), JobDone(params["status"], params["result"])
                    )
                return
            except _TRANSIENT as exc:
                log.warning(
                    "cannot record the result of job %s (%s); retrying in %.1f s",
                    job_id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except psycopg.Error as exc:
                if rejected:
                    # Even the error could not be stored: the zombie monitor will act.
                    log.exception("cannot record the outcome of job %s", job_id)
                    return
                # The database refused the result (e.g. JSON it cannot store): record why
                # instead, so that the job ends rather than running again.
                rejected = True
                log.warning("the result of job %s cannot be stored: %s", job_id, exc)
                params["status"] = "failure"
                params["result"] = error_result(
                    "StoreError", f"the job's result could not be stored: {exc}".strip()
                )

    async def _requeue(self, name: str, job_id: UUID, job_log: _JobLog) -> None:
        job_log.write("\n[gristmill] the worker stopped; the job goes back to the queue\n")
        with contextlib.suppress(*_TRANSIENT):
            async with (
                self.pool.connection(timeout=_REQUEUE_TIMEOUT_S) as conn,
                conn.transaction(),
            ):
                await conn.execute(
                    Q["append_log"],
                    {
                        "id": job_id,
                        "log_offset": job_log.flushed,
                        "content": "".join(job_log.pending),
                    },
                )
                await conn.execute(Q["requeue_job"], {"id": job_id, "worker": name})
                return
        log.warning("could not requeue job %s; the zombie monitor will restart it", job_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if not self._running:
                continue
            by_worker: dict[str, list[UUID]] = {}
            for running in list(self._running.values()):
                by_worker.setdefault(running.worker, []).append(running.job_id)
            for worker, ids in by_worker.items():
                try:
                    async with self.pool.connection() as conn:
                        rows = await (
                            await conn.execute(Q["heartbeat"], {"ids": ids, "worker": worker})
                        ).fetchall()
                except _TRANSIENT as exc:
                    log.warning("heartbeat failed (%s)", exc)
                    continue
                held = {str(row[0]): row for row in rows}
                for job_id in ids:
                    running = self._running.get(str(job_id))
                    if running is None or running.stop_reason is not None:
                        continue
                    row = held.get(str(job_id))
                    if row is None:
                        running.stop_reason = "lost"
                        running.cancel.set()
                    elif row[1] is not None:
                        running.stop_reason = "cancel"
                        running.cancel.set()


def _failure(name: str, message: str) -> tuple[JobOutcome, str]:
    return JobOutcome(False, error_result(name, message)), "failure"


def _with_env(ctx: JobContext, env: Mapping[str, str]) -> JobContext:
    return replace(ctx, env=dict(env))
