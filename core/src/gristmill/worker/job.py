"""Running one claimed job: its runtime prepares it, the sandbox runs its steps, and its
outcome is recorded (or the job goes back to the queue when the worker stops)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
import pluggy
import psycopg
from psycopg_pool import AsyncConnectionPool

from gristmill.config import Settings
from gristmill.db.pool import database_down, wait_until_up
from gristmill.db.queries import Q
from gristmill.errors import BadInput, Forbidden, JobErrorName, NotFound, Unavailable
from gristmill.flows.model import inline_scripts
from gristmill.queue.cancel import canceled_error, read_cancel_request
from gristmill.queue.claim import SecretsRead, complete_job, requeue_job
from gristmill.queue.notify import JobDone, Notifier
from gristmill.queue.states import JobKind, JobStatus, StopReason
from gristmill.queue.trace import TRACE
from gristmill.runtimes import (
    DependencyLocking,
    JobContext,
    JobOutcome,
    ResourceReferences,
    Runtime,
    RuntimeRegistry,
    ScriptError,
    UnknownRuntimeError,
    error_result,
)
from gristmill.sandbox import RunPolicy
from gristmill.sandbox.spec import Mount
from gristmill.scripts.deployment import lock_error_message, read_version_lock, store_lock
from gristmill.scripts.hashes import format_hash
from gristmill.worker.environments import EnvironmentCache
from gristmill.worker.execution import execute, lock_job
from gristmill.worker.jobenv import job_env
from gristmill.worker.logs import WITHHELD, JobLog, SecretMask, flush_periodically
from gristmill.worker.retry import TRANSIENT, retry_transient
from gristmill.worker.spool import Spool, SpooledResult
from gristmill.workspace.interpolate import has_references
from gristmill.workspace.resources import job_access, resolve_job_references
from gristmill.workspace.secrets import Secrets

if TYPE_CHECKING:
    from gristmill.flows.engine import FlowEngine

__all__ = ["JobRunner", "Running"]

#: How long a job's end waits for a log write under way before giving up on it.
_FLUSH_STOP_S = 10.0

log = logging.getLogger(__name__)

# How long a stopping worker tries to give its running job back to the queue; past it, the
# zombie monitor will restart the job.
REQUEUE_TIMEOUT_S = 5.0


@dataclass
class Running:
    """A job being run by one worker."""

    job_id: UUID
    worker: str
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    #: Why the process is being stopped early.
    stop_reason: StopReason | None = None
    #: When each phase of the job ended (perf_counter), for the debug log.
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, phase: str) -> None:
        self.marks.append((phase, time.perf_counter()))
        if TRACE.enabled:
            TRACE.mark(self.job_id, phase)

    def stop(self, reason: StopReason) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            self.cancel.set()

    def timeline(self) -> str:
        parts = []
        for (_, before), (phase, at) in zip(self.marks, self.marks[1:], strict=False):
            parts.append(f"{phase} {(at - before) * 1000:.2f} ms")
        return ", ".join(parts)


def _failure(name: str, message: str) -> tuple[JobOutcome, JobStatus]:
    return JobOutcome(False, error_result(name, message)), JobStatus.FAILURE


class JobRunner:
    """What every worker of a process shares to run jobs: settings, runtimes, sandbox policy,
    dependency environments, the database."""

    def __init__(
        self,
        *,
        settings: Settings,
        pool: AsyncConnectionPool,
        notifier: Notifier,
        registry: RuntimeRegistry,
        plugins: pluggy.PluginManager,
        job_token_secret: bytes,
        policy: RunPolicy,
        secrets: Secrets,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.notifier = notifier
        self.registry = registry
        self.plugins = plugins
        self.secret = job_token_secret
        self.policy = policy
        #: Decrypts the secrets a job read, to mask them in its logs.
        self.secrets = secrets
        self.environments = EnvironmentCache(settings.cache_dir / "envs")
        #: Results kept on disk while the database is unreachable (see gristmill.worker.spool).
        self.spool = Spool(settings.data_dir / "spool")
        self._cache_dirs: set[str] = set()
        #: Advances a flow when one of its steps' jobs completes (set by the platform).
        self.flows: FlowEngine | None = None

    async def run(self, running: Running, job: dict[str, Any]) -> None:
        """Run a claimed job to its end and record it (or requeue it on shutdown)."""
        job_id: UUID = job["id"]
        key = str(job_id)
        name = running.worker
        running.mark("claimed")
        job_log = JobLog(
            flushed=job["log_offset"],
            secret_mask=SecretMask(self.secrets, job_id, job["workspace_id"]),
        )
        if job_log.flushed:
            job_log.write("\n[gristmill] previous attempt interrupted; the job starts again\n")
        job_dir = self.settings.jobs_dir / key
        flow_dir = _same_worker_dir(self.settings.jobs_dir, job)
        if flow_dir is not None:
            job_dir = flow_dir / key
        stop_flushing = asyncio.Event()
        flusher = asyncio.create_task(
            flush_periodically(
                self.pool, job_id, job_log, self.settings.log_flush_ms / 1000, stop_flushing
            )
        )
        try:
            outcome, status = await self._prepare_and_run(job, job_dir, job_log, running, flow_dir)
        finally:
            stop_flushing.set()
            # A write under way ends first (see flush_periodically); one stuck on an
            # unreachable database is given up after a while, its output kept pending.
            try:
                await asyncio.wait_for(asyncio.shield(flusher), _FLUSH_STOP_S)
            except TimeoutError:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
        if running.stop_reason == StopReason.SHUTDOWN:
            await self._requeue(name, job_id, job_log)
        elif running.stop_reason == StopReason.LOST:
            log.warning(
                "job %s was taken over by another worker; this run's result is dropped", key
            )
        else:
            await self._complete(name, job, status, outcome.result_json, job_log, running)
        running.mark("complete")
        if not self.settings.keep_job_dir:
            # Soon, not now: the caller waiting for this result need not wait for the disk
            # (and a thread would contend for the GIL at the worst moment).
            asyncio.get_running_loop().call_later(
                0.05, functools.partial(shutil.rmtree, job_dir, ignore_errors=True)
            )
            if flow_dir is not None:
                await self._drop_flow_dir(flow_dir, job["flow_job_id"])
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s: %s", key, running.timeline())

    async def _prepare_and_run(
        self,
        job: dict[str, Any],
        job_dir: Path,
        job_log: JobLog,
        running: Running,
        flow_dir: Path | None = None,
    ) -> tuple[JobOutcome, JobStatus]:
        if job["code"] is None:
            return _failure(
                JobErrorName.SCRIPT_NOT_FOUND, "the script version of this job no longer exists"
            )
        if job["kind"] == JobKind.FLOWDEPENDENCIES:
            return await self._lock_flow(job, job_dir, job_log, running)
        try:
            runtime = self.registry.get(job["language"])
        except UnknownRuntimeError as exc:
            return _failure(JobErrorName.UNKNOWN_LANGUAGE, str(exc))
        timeout_s = float(
            min(job["timeout"] or self.settings.job_timeout_s, self.settings.job_timeout_s)
        )
        try:
            args, named_resources = await self._resolve_references(job, runtime)
        except (NotFound, Forbidden, BadInput, ScriptError) as exc:
            return _failure(JobErrorName.RESOURCE, str(exc))
        except TRANSIENT:
            return _failure(
                JobErrorName.RESOURCE,
                "the job's resources could not be read: the database is unreachable",
            )
        # The job directory and its args.json are made by the execution when a step needs
        # them (a warm run needs neither: gristmill.worker.execution.materialize).
        mounts: list[Mount] = []
        if flow_dir is not None:
            job_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
            # same_worker: `./shared` is a link to the flow run's shared directory, mounted
            # at its own path (so the link resolves inside the sandbox as outside). Only
            # this flow's steps get it; it goes when the flow ends (_drop_flow_dir).
            shared = flow_dir / SHARED_DIR
            shared.mkdir(exist_ok=True)
            link = job_dir / SHARED_DIR
            if not link.is_symlink():
                link.symlink_to(Path("..") / SHARED_DIR)
            mounts.append(Mount(str(shared), writable=True))
        ctx = JobContext(
            id=job["id"],
            workspace_id=job["workspace_id"],
            language=runtime.name,
            code=job["code"],
            args=args,
            job_dir=job_dir,
            schema=job["schema"],
            script_path=job["runnable_path"],
            script_hash=format_hash(job["runnable_hash"])
            if job["runnable_hash"] is not None
            else None,
            timeout_s=timeout_s,
            cache_dir=self._cache_dir(runtime.name),
            resources=named_resources,
        )
        ctx = replace(ctx, env=job_env(self.settings, self.plugins, self.secret, job, ctx))
        if job["kind"] == JobKind.DEPENDENCIES:
            return await self._lock_version(job, ctx, job_log, running)
        if isinstance(runtime, DependencyLocking):
            lock, errors = await self._version_lock(job)
            if errors is not None:
                return _failure(JobErrorName.LOCK, lock_error_message(errors))
            ctx = replace(ctx, lock=lock)
        running.mark("prepared")
        execution = await execute(
            runtime,
            ctx,
            on_output=job_log.write,
            cancel=running.cancel,
            on_step=running.mark,
            environments=self.environments,
            policy=self.policy,
            mounts=mounts,
        )
        running.mark("collected")
        if execution.outcome is not None:
            status = JobStatus.SUCCESS if execution.outcome.success else JobStatus.FAILURE
            return execution.outcome, status
        if running.stop_reason == StopReason.CANCEL:
            return await self._canceled(ctx.id)
        # Shutdown or lost: the caller does not record this outcome.
        return JobOutcome(False, "null"), JobStatus.FAILURE

    async def _resolve_references(
        self, job: dict[str, Any], runtime: Runtime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The job's arguments with ``$res:``/``$var:`` references replaced, and the
        resources its code names, read as the job's user. The stored arguments keep the
        references (no secret lands in the job's row); a job without any costs no query."""
        args: dict[str, Any] = job["args"] or {}
        paths = (
            list(runtime.resource_paths(job["code"]))
            if isinstance(runtime, ResourceReferences) and job["kind"] != JobKind.DEPENDENCIES
            else []
        )
        if not paths and not has_references(args):
            return args, {}
        username = job["permissioned_as"].removeprefix("u/")
        async with self.pool.connection() as conn:
            access = await job_access(
                conn,
                workspace_id=job["workspace_id"],
                email=job["email"],
                username=username,
                # References are only read: the state path (what a job may write) is moot.
                state_path=None,
                superadmin_secret_set=bool(self.settings.superadmin_secret),
            )
            return await resolve_job_references(
                conn, self.secrets, access, args=args, resource_paths=paths, job_id=job["id"]
            )

    async def _canceled(self, job_id: UUID) -> tuple[JobOutcome, JobStatus]:
        by, reason = None, None
        with contextlib.suppress(*TRANSIENT):
            by, reason = await read_cancel_request(self.pool, job_id)
        return JobOutcome(False, canceled_error(by, reason)), JobStatus.CANCELED

    async def _version_lock(self, job: dict[str, Any]) -> tuple[str | None, str | None]:
        """The lock a job runs against, and the lock errors of its version. A version whose
        dependency job has not ended yet (or whose row the API had cached before it did)
        is read again; still without a lock, the job resolves one itself."""
        lock, errors = job["lock"], job["lock_error_logs"]
        if lock is None and errors is None and job["runnable_hash"] is not None:
            with contextlib.suppress(*TRANSIENT):
                async with self.pool.connection() as conn:
                    stored = await read_version_lock(
                        conn, workspace_id=job["workspace_id"], hash=job["runnable_hash"]
                    )
                if stored is not None:
                    lock, errors = stored
        return lock, errors

    async def _lock_version(
        self, job: dict[str, Any], ctx: JobContext, job_log: JobLog, running: Running
    ) -> tuple[JobOutcome, JobStatus]:
        """A dependency job: lock the version's requirements; its completion stores the lock
        (or the resolver's output) on the version."""
        runtime = self.registry.get(job["language"])
        toolchain = runtime.toolchain()
        if not toolchain.available:
            outcome = await self._store_lock(job, None, toolchain.message)
            return outcome or _failure(JobErrorName.TOOLCHAIN_MISSING, toolchain.message)
        locked = await lock_job(
            runtime, ctx, on_output=job_log.write, cancel=running.cancel, policy=self.policy
        )
        if locked.lock is None and locked.error is not None and locked.error.canceled:
            if running.stop_reason == StopReason.CANCEL:
                outcome, status = await self._canceled(ctx.id)
                reason = orjson.loads(outcome.result_json)["error"]["reason"]
                await self._store_lock(job, None, f"the dependency job was canceled: {reason}")
                return outcome, status
            return JobOutcome(False, "null"), JobStatus.FAILURE
        if locked.lock is not None:
            await self._store_lock(job, locked.lock, None)
            result = orjson.dumps(
                {"status": "Successful lock file generation", "lock": locked.lock}
            ).decode()
            return JobOutcome(True, result), JobStatus.SUCCESS
        assert locked.error is not None and locked.error.outcome is not None
        logs = (
            locked.logs.strip()
            or orjson.loads(locked.error.outcome.result_json)["error"]["message"]
        )
        await self._store_lock(job, None, logs)
        return locked.error.outcome, JobStatus.FAILURE

    async def _lock_flow(
        self, job: dict[str, Any], job_dir: Path, job_log: JobLog, running: Running
    ) -> tuple[JobOutcome, JobStatus]:
        """A flow's dependency job: lock each inline script of the flow value (the job's
        code) whose runtime locks dependencies, one after the other, each in a directory of
        its own; the result is Windmill's ``{"updated_flow_value": ...}``. The first script
        that cannot be locked fails the job, naming its module."""
        value = orjson.loads(job["code"])
        timeout_s = float(
            min(job["timeout"] or self.settings.job_timeout_s, self.settings.job_timeout_s)
        )
        for index, (module_id, script) in enumerate(inline_scripts(value)):
            content, language = script.get("content"), script.get("language")
            if not isinstance(content, str) or not isinstance(language, str):
                continue
            try:
                runtime = self.registry.get(self.registry.resolve(language))
            except UnknownRuntimeError as exc:
                return _failure(JobErrorName.UNKNOWN_LANGUAGE, f'module "{module_id}": {exc}')
            if not isinstance(runtime, DependencyLocking):
                continue
            toolchain = runtime.toolchain()
            if not toolchain.available:
                return _failure(JobErrorName.TOOLCHAIN_MISSING, toolchain.message)
            job_log.write(f"[gristmill] locking the dependencies of module {module_id}\n")
            ctx = JobContext(
                id=job["id"],
                workspace_id=job["workspace_id"],
                language=runtime.name,
                code=content,
                args={},
                job_dir=job_dir / f"module-{index}",
                script_path=job["runnable_path"],
                timeout_s=timeout_s,
                cache_dir=self._cache_dir(runtime.name),
            )
            ctx = replace(ctx, env=job_env(self.settings, self.plugins, self.secret, job, ctx))
            locked = await lock_job(
                runtime, ctx, on_output=job_log.write, cancel=running.cancel, policy=self.policy
            )
            if locked.lock is None:
                if running.stop_reason == StopReason.CANCEL:
                    return await self._canceled(ctx.id)
                if locked.error is None or locked.error.outcome is None:
                    return JobOutcome(False, "null"), JobStatus.FAILURE  # shutdown or lost
                logs = (
                    locked.logs.strip()
                    or orjson.loads(locked.error.outcome.result_json)["error"]["message"]
                )
                return _failure(JobErrorName.LOCK, f'module "{module_id}": {logs}')
            script["lock"] = locked.lock
        return JobOutcome(True, orjson.dumps({"updated_flow_value": value}).decode()), (
            JobStatus.SUCCESS
        )

    async def _store_lock(
        self, job: dict[str, Any], lock: str | None, errors: str | None
    ) -> tuple[JobOutcome, JobStatus] | None:
        """Record a version's lock or lock errors; retried while the database is away. A
        job locking code that is not saved (``jobs/run/dependencies_async``) has no version:
        its result is all there is."""
        if job["runnable_hash"] is None:
            return None

        async def store() -> None:
            async with self.pool.connection() as conn:
                await store_lock(
                    conn,
                    workspace_id=job["workspace_id"],
                    hash=job["runnable_hash"],
                    lock=lock,
                    lock_error_logs=errors,
                )

        try:
            await retry_transient(
                store, what=f"storing the lock of job {job['id']}", attempts=8, max_delay_s=5.0
            )
        except TRANSIENT:
            return _failure(
                JobErrorName.STORE, "the lock could not be stored: the database is unreachable"
            )
        return None

    def _cache_dir(self, runtime: str) -> Path:
        path = self.settings.cache_dir / runtime
        if runtime not in self._cache_dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._cache_dirs.add(runtime)
        return path

    async def _complete(
        self,
        name: str,
        job: dict[str, Any],
        status: JobStatus,
        result_json: str,
        job_log: JobLog,
        running: Running,
    ) -> None:
        """Record the outcome: never lost, never recorded twice (see :meth:`record`)."""
        mask = job_log.secret_mask
        logs = "".join(job_log.pending)
        entry = SpooledResult(
            job_id=job["id"],
            workspace_id=job["workspace_id"],
            worker=name,
            started_at=job.get("started_at"),
            status=status,
            result_json=result_json,
            log_offset=job_log.flushed,
            # Masked with what is known; the completion checks for secrets read since.
            logs=mask.mask(logs) if mask is not None else logs,
            unmasked=mask is not None,
            flow_job_id=job.get("flow_job_id"),
        )
        await self.record(entry, mask, running=running)

    async def record(
        self,
        entry: SpooledResult,
        mask: SecretMask | None = None,
        *,
        spooled: bool = False,
        running: Running | None = None,
    ) -> None:
        """Record one outcome; while the database is unreachable, keep it (in memory and in
        the spool, fsynced) and retry until it is recorded or refused, or until this
        process stops (``running`` stopped for a shutdown): the spool keeps it then, for the
        next worker process on this data directory. Refused: the attempt
        that produced it no longer holds the job (the zombie monitor gave it to another
        worker), and the result is dropped. ``spooled``: ``entry`` came from the spool (a
        worker process since restarted): it leaves the spool once recorded or refused.

        A flow step's completion advances its flow in the same transaction (see
        gristmill.flows.engine)."""
        try:
            held, recorded = await self._record_storable(entry, mask)
        except TRANSIENT as exc:
            if not spooled:
                # On disk before waiting: a stop (or crash) of this process keeps it.
                await asyncio.to_thread(self.spool.put, entry)
                spooled = True
                log.warning(
                    "job %s ended while the database is unreachable (%s); its result is "
                    "kept (in %s) until it can be recorded",
                    entry.job_id,
                    exc,
                    self.spool.path,
                )
            outcome = await self._record_when_up(entry, mask, running)
            if outcome is None:
                log.warning(
                    "stopping: the result of job %s stays in the spool (%s) for the next "
                    "worker process",
                    entry.job_id,
                    self.spool.path,
                )
                return
            held, recorded = outcome
        if spooled:
            await asyncio.to_thread(self.spool.remove, entry.job_id)
        if TRACE.enabled:
            TRACE.mark(entry.job_id, "recorded")
        if held:
            # A caller waiting in this process needs not wait for the notification.
            self.notifier.deliver_done(
                str(entry.job_id), JobDone(recorded.status, recorded.result_json)
            )

    async def replay_spool(self) -> None:
        """Record the results a previous worker process on this data directory kept in the
        spool (called at start, before any claim)."""
        for entry in await asyncio.to_thread(self.spool.entries):
            log.warning(
                "recording the result of job %s kept in the spool by worker %s",
                entry.job_id,
                entry.worker,
            )
            await self.record(entry, spooled=True)

    async def _record_when_up(
        self, entry: SpooledResult, mask: SecretMask | None, running: Running | None
    ) -> tuple[bool, SpooledResult] | None:
        """Retry a completion until the database takes it: woken when the pool sees the
        database again, quiet meanwhile (the pool logs the outage once). ``None``: the
        process stops first."""
        delay_s = 0.5
        while True:
            # Looks at least every second whether the process stops (a stop waits for
            # busy workers: this one must not hold it up for a whole outage).
            while not await _up_within(self.pool, 1.0):
                if running is not None and running.stop_reason == StopReason.SHUTDOWN:
                    return None
            if running is not None and running.stop_reason == StopReason.SHUTDOWN:
                return None
            try:
                return await self._record_storable(entry, mask)
            except TRANSIENT as exc:
                if not database_down(self.pool):
                    log.warning("recording the result of job %s failed (%s)", entry.job_id, exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 5.0)

    async def _record_storable(
        self, entry: SpooledResult, mask: SecretMask | None
    ) -> tuple[bool, SpooledResult]:
        """One completion; ``(held, what was recorded)``. A result the database refuses
        (e.g. JSON it cannot store) is replaced by why, so that the job ends rather than
        running again. :data:`TRANSIENT` errors are raised."""
        try:
            held = await self._record_entry(entry, mask)
        except TRANSIENT:
            raise
        except psycopg.Error as exc:
            log.warning("the result of job %s cannot be stored: %s", entry.job_id, exc)
            entry = replace(
                entry,
                status=JobStatus.FAILURE,
                result_json=error_result(
                    JobErrorName.STORE, f"the job's result could not be stored: {exc}".strip()
                ),
            )
            try:
                held = await self._record_entry(entry, mask)
            except TRANSIENT:
                raise
            except psycopg.Error:
                # Even the error could not be stored: the zombie monitor will act.
                log.exception("cannot record the outcome of job %s", entry.job_id)
                return False, entry
        if not held:
            log.warning(
                "job %s is no longer held by this attempt of %s (another worker took it over, "
                "or it was recorded already); its result is dropped",
                entry.job_id,
                entry.worker,
            )
        return held, entry

    async def _record_entry(self, entry: SpooledResult, mask: SecretMask | None) -> bool:
        """One completion attempt; ``False`` when the attempt no longer holds the job."""
        async with self.pool.connection() as conn:
            completion = functools.partial(
                complete_job,
                conn,
                job_id=entry.job_id,
                worker=entry.worker,
                status=entry.status,
                result_json=entry.result_json,
                log_offset=entry.log_offset,
                started_at=entry.started_at,
            )

            async def complete() -> bool:
                if not entry.unmasked or not entry.logs:
                    return await completion(logs=entry.logs)
                secret_mask = mask or SecretMask(self.secrets, entry.job_id, entry.workspace_id)
                if secret_mask.knows_none:
                    # Checked by the statement: one round trip when no secret was read.
                    with contextlib.suppress(SecretsRead):
                        return await completion(logs=entry.logs, unmasked=True)
                try:
                    await secret_mask.refresh(conn)
                    logs = secret_mask.mask(entry.logs)
                except Unavailable as exc:
                    log.error(
                        "job %s: output withheld, its secrets cannot be masked: %s",
                        entry.job_id,
                        exc,
                    )
                    logs = WITHHELD
                return await completion(logs=logs)

            if entry.flow_job_id is None or self.flows is None:
                # One statement: no transaction of its own (no extra round trips).
                return await complete()
            # A flow's step: its result and the flow's next decision commit together.
            async with conn.transaction():
                held = await complete()
                if held:
                    await self.flows.step_completed(
                        conn,
                        flow_job_id=entry.flow_job_id,
                        job_id=entry.job_id,
                        status=entry.status,
                        result_json=entry.result_json,
                    )
                return held

    async def _drop_flow_dir(self, flow_dir: Path, flow_job_id: UUID) -> None:
        """same_worker: remove the flow run's directory (its `shared`) once the flow has
        ended. Checked after each of its steps: the last one's completion ends the flow in
        the same transaction; a flow canceled or failed otherwise ends with a step too."""
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(Q["flowctl_flow_live"], {"id": flow_job_id})
                live = await cur.fetchone()
        except TRANSIENT:
            return
        if live is not None and not live[0]:
            asyncio.get_running_loop().call_later(
                0.05, functools.partial(shutil.rmtree, flow_dir, ignore_errors=True)
            )

    async def _requeue(self, name: str, job_id: UUID, job_log: JobLog) -> None:
        job_log.write("\n[gristmill] the worker stopped; the job goes back to the queue\n")
        with contextlib.suppress(*TRANSIENT):
            async with self.pool.connection(timeout=REQUEUE_TIMEOUT_S) as conn:
                chunk = await job_log.chunk(conn, final=True)
                await requeue_job(
                    conn,
                    job_id=job_id,
                    worker=name,
                    log_offset=job_log.flushed,
                    logs=chunk.text,
                )
                return
        log.warning("could not requeue job %s; the zombie monitor will restart it", job_id)


#: The directory a same_worker flow's steps share, as Windmill's: `./shared` in each step's
#: working directory.
SHARED_DIR = "shared"


def _same_worker_dir(jobs_dir: Path, job: dict[str, Any]) -> Path | None:
    """The flow run's directory when ``job`` is a step of a same_worker flow: its steps'
    job directories are made inside it, next to the shared one (the sandbox lets a step
    see into the flow's directory only what is mounted: its own and the shared one)."""
    if not job.get("same_worker") or job.get("flow_job_id") is None:
        return None
    return jobs_dir / str(job["flow_job_id"])


async def _up_within(pool: AsyncConnectionPool, timeout_s: float) -> bool:
    """Whether ``pool``'s database is (or comes) up within ``timeout_s``."""
    await wait_until_up(pool, timeout_s)
    return not database_down(pool)
