"""Submitting runs: a saved script by path or hash, or code sent with the request (a
preview), checked against its schema and queued; and waiting for the result.

One :class:`Submitter` per process. In a standalone process that has an idle worker, a new
job is inserted already claimed by that worker and handed to it in memory (no notification,
no claim query: the fast path of a single-machine install). A job no worker can run (its
toolchain is missing everywhere, or its version's lock failed) is recorded as failed at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID, uuid4

import orjson
from psycopg_pool import AsyncConnectionPool

from gristmill.errors import BadInput, JobErrorName, NotFound, RepeatMismatch
from gristmill.flows.model import inline_scripts, parse_flow
from gristmill.queue.enqueue import (
    NewJob,
    StaleScriptError,
    push_claimed_job,
    push_failed_job,
    push_job,
)
from gristmill.queue.idempotency import AlreadySubmitted, check_key
from gristmill.queue.notify import JobDone, Notifier
from gristmill.queue.rows import completed_result
from gristmill.queue.states import JobKind, JobStatus
from gristmill.queue.trace import TRACE
from gristmill.queue.waiting import check_queue_limit, early_result, wait_for_completion
from gristmill.runtimes import (
    DependencyLocking,
    Runtime,
    RuntimeRegistry,
    ScriptError,
    UnknownRuntimeError,
    error_result,
)
from gristmill.runtimes.schema import ArgumentError, signature_to_schema, validate_args
from gristmill.scripts.cache import ScriptCache
from gristmill.scripts.deployment import DEPENDENCY_TAG, lock_error_message
from gristmill.scripts.paths import check_path
from gristmill.scripts.versions import fetch_by_hash, fetch_live, script_error_message
from gristmill.validation import (
    INT4_MAX,
    InputLimits,
    TooLarge,
    check_int,
    check_json,
    check_script_size,
    check_text_fields,
)

if TYPE_CHECKING:
    from gristmill.auth.actor import Actor
    from gristmill.auth.permissions import Access

__all__ = ["Preview", "RunOptions", "Submitter", "check_args", "scheduled_in"]


def scheduled_in(seconds: int) -> dt.datetime:
    """The time ``seconds`` from now, for a run scheduled for later."""
    # Bounded as a timeout is: beyond it, the date overflows Python's and Postgres's dates.
    check_int("scheduled_in_secs", seconds, 0, INT4_MAX)
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


@dataclass(frozen=True)
class RunOptions:
    """How to run: when, on which tag, with which id, under which parent, for how long.

    ``trigger_kind``/``trigger``/``flow_step_id`` are for internal callers (schedules, flows):
    the HTTP API never sets them. A ``job_id`` or ``idempotency_key`` taken by a job this run
    matches answers with that job (docs/reliability.md "Idempotent submission")."""

    scheduled_for: dt.datetime | None = None
    tag: str | None = None
    job_id: UUID | None = None
    parent_job: UUID | None = None
    timeout: int | None = None
    root_job: UUID | None = None
    trigger_kind: str | None = None
    trigger: str | None = None
    flow_step_id: str | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        check_text_fields(self)
        check_key(self.idempotency_key)
        # The job's timeout is an integer column; zero or less would end the job at once.
        check_int("timeout", self.timeout, 1, INT4_MAX)


@dataclass(frozen=True)
class Preview:
    """Code to run without saving it."""

    content: str
    language: str
    args: Mapping[str, Any]
    path: str | None = None
    tag: str | None = None
    #: The script's lock (as stored on a version); without it the worker resolves one.
    lock: str | None = None

    def check(self, limits: InputLimits) -> None:
        """Refuse text the database cannot store and code over the script size limit."""
        check_text_fields(self)
        check_script_size(self.content, limits)


class _Reservation(Protocol):
    worker: str

    def hand(self, job: dict[str, Any]) -> None: ...

    def release(self) -> None: ...


class _Capabilities(Protocol):
    async def refusal(self, tag: str) -> str | None: ...


@dataclass(frozen=True)
class _Runnable:
    """A job to queue, with the code and schema its worker needs."""

    job: NewJob
    code: str
    schema: dict[str, Any] | None
    #: Set when the script came from this process's cache: the insert checks it is live.
    live_hash: int | None = None
    #: The version's lock, and why it could not be locked (the job then fails at once).
    lock: str | None = None
    lock_error_logs: str | None = None

    @classmethod
    def of_script(cls, job: NewJob, row: dict[str, Any], *, cached: bool = False) -> _Runnable:
        return cls(
            job,
            row["content"],
            row["schema"],
            row["hash"] if cached else None,
            row["lock"],
            row["lock_error_logs"],
        )


def _not_found(path: str) -> NotFound:
    # The same answer as for a missing script: an invisible one is not revealed.
    return NotFound(f"Script not found at name {path}")


def _check_visible(access: Access | None, row: Mapping[str, Any]) -> None:
    if access is not None and not access.can_read(row["path"], row.get("extra_perms")):
        raise _not_found(row["path"])


def check_args(
    schema: Mapping[str, Any] | None,
    args: Mapping[str, Any],
    limits: InputLimits,
    *,
    runtime_limit: int | None = None,
    language: str = "",
) -> dict[str, Any]:
    """A job's arguments checked against its schema and the instance's limits, before
    anything is written: nesting and NUL characters first (nothing below recurses past the
    depth limit), then the size as JSON, then the schema."""
    check_json("args", args, max_depth=limits.max_args_depth)
    size = len(orjson.dumps(args))
    if size > limits.max_args_bytes:
        raise TooLarge(
            f"the arguments are {size} bytes as JSON, over the limit of "
            f"{limits.max_args_bytes} bytes (GRISTMILL_MAX_ARGS_SIZE_MB="
            f"{limits.max_args_bytes // (1024 * 1024)}); pass large data by reference (a URL "
            "or a file the script reads) rather than as an argument"
        )
    if runtime_limit is not None and size > runtime_limit:
        raise TooLarge(
            f"the arguments are {size} bytes as JSON, over the {runtime_limit} bytes that "
            f"{language} jobs can take (they receive their arguments on the command line, "
            "which the operating system bounds); pass large data by reference (a URL or a "
            "file the script reads)"
        )
    try:
        return validate_args(schema, dict(args))
    except ArgumentError as exc:
        raise BadInput(str(exc)) from None


class Submitter:
    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        registry: RuntimeRegistry,
        notifier: Notifier,
        capabilities: _Capabilities | None = None,
        reserve: Callable[[str], _Reservation | None] | None = None,
        limits: InputLimits | None = None,
    ) -> None:
        self.pool = pool
        self.registry = registry
        self.notifier = notifier
        self.capabilities = capabilities
        self.reserve = reserve
        self.limits = limits or InputLimits()
        self.cache = ScriptCache()

    # -- what to run ---------------------------------------------------------------------

    def _script_job(
        self,
        workspace_id: str,
        actor: Actor,
        row: dict[str, Any],
        args: Mapping[str, Any],
        options: RunOptions,
        *,
        by_hash: bool = False,
    ) -> NewJob:
        """A job running a saved script version, its arguments checked against its schema."""
        checked = self._check_args(row["schema"], args, row["language"])
        job_id = options.job_id or uuid4()
        if TRACE.enabled:
            TRACE.mark(job_id, "validated")
        return self._new_job(
            actor,
            options,
            id=job_id,
            workspace_id=workspace_id,
            kind=JobKind.SCRIPT,
            tag=options.tag or row["tag"] or row["language"],
            args=checked,
            language=row["language"],
            runnable_path=row["path"],
            runnable_hash=row["hash"],
            priority=row["priority"],
            timeout=options.timeout or row["timeout"],
            audit_operation="jobs.run.script",
            by_hash=by_hash,
        )

    @staticmethod
    def _new_job(actor: Actor, options: RunOptions, **fields: Any) -> NewJob:
        """The job run as ``actor``: its user, email, and its token's scopes (a job's token
        never allows more than the token that started it; a job starting a job passes its
        own inherited scopes on)."""
        return NewJob(
            created_by=actor.username,
            permissioned_as=actor.permissioned_as,
            email=actor.email,
            permissioned_scopes=actor.scopes,
            parent_job=options.parent_job,
            root_job=options.root_job,
            trigger_kind=options.trigger_kind,
            trigger=options.trigger,
            flow_step_id=options.flow_step_id,
            scheduled_for=options.scheduled_for,
            idempotency_key=options.idempotency_key,
            **fields,
        )

    async def run_script_by_path(
        self,
        workspace_id: str,
        actor: Actor,
        path: str,
        args: Mapping[str, Any],
        options: RunOptions,
        *,
        access: Access | None = None,
    ) -> UUID:
        """Queue a run of the live version at ``path``; return the job id.

        With ``access``, the caller must be able to read the script (else 404, as for a
        missing one); internal callers (schedules) that checked already pass none."""
        row = self.cache.get(workspace_id, path)
        # A cached row's extra_perms may be stale (changed by another process): it is trusted
        # only when the caller may read the path without them (admin, owner, folder: all
        # judged on this request's fresh access).
        if row is not None and (access is None or access.can_read(path)):
            try:
                job = self._script_job(workspace_id, actor, row, args, options)
                return await self._push(_Runnable.of_script(job, row, cached=True))
            except StaleScriptError:
                self.cache.drop(workspace_id, path)
            except RepeatMismatch:
                raise  # judged on the stored job, not on the cached schema
            except BadInput:
                # Judged on an old schema: judge on the live one.
                self.cache.drop(workspace_id, path)
        row = await self._live_script(workspace_id, path)
        _check_visible(access, row)
        job = self._script_job(workspace_id, actor, row, args, options)
        return await self._push(_Runnable.of_script(job, row))

    async def run_script_by_hash(
        self,
        workspace_id: str,
        actor: Actor,
        hash_text: str,
        args: Mapping[str, Any],
        options: RunOptions,
        *,
        access: Access | None = None,
    ) -> UUID:
        """Queue a run of one exact version; return the job id."""
        row = await fetch_by_hash(self.pool, workspace_id, hash_text)
        if access is not None and not access.can_read(row["path"], row.get("extra_perms")):
            raise NotFound(f"no script with hash {hash_text} in workspace {workspace_id}")
        job = self._script_job(workspace_id, actor, row, args, options, by_hash=True)
        return await self._push(_Runnable.of_script(job, row))

    async def run_preview(
        self,
        workspace_id: str,
        actor: Actor,
        preview: Preview,
        options: RunOptions,
        *,
        access: Access | None = None,
    ) -> UUID:
        """Queue a run of code sent with the request; return the job id.

        With ``access``, operators are refused (they run saved scripts only, as in
        Windmill)."""
        if access is not None:
            access.require_not_operator()
        preview.check(self.limits)
        try:
            language = self.registry.resolve(preview.language)
        except UnknownRuntimeError as exc:
            raise BadInput(str(exc)) from None
        if preview.path is not None:
            check_path(preview.path)
        try:
            signature = self.registry.get(language).parse_signature(preview.content)
        except ScriptError as exc:
            raise BadInput(script_error_message(exc)) from None
        schema = signature_to_schema(signature)
        args = self._check_args(schema, preview.args, language)
        job = self._new_job(
            actor,
            options,
            id=options.job_id or uuid4(),
            workspace_id=workspace_id,
            kind=JobKind.PREVIEW,
            tag=options.tag or preview.tag or language,
            args=args,
            language=language,
            runnable_path=preview.path,
            raw_code=preview.content,
            raw_schema=schema,
            raw_lock=preview.lock,
            timeout=options.timeout,
            audit_operation="jobs.run.preview",
        )
        return await self._push(_Runnable(job, preview.content, schema))

    async def lock_dependencies(
        self,
        workspace_id: str,
        actor: Actor,
        content: str,
        language: str,
        path: str,
        *,
        access: Access | None = None,
    ) -> UUID:
        """Queue a dependency job for code that is not saved (Windmill's
        ``jobs/run/dependencies_async``, which ``wmill generate-metadata`` calls); return its
        id. Its result is Windmill's: ``{"status": ..., "lock": ...}`` (``lock`` is ``""``
        for code that needs nothing); no version is written."""
        if access is not None:
            access.require_not_operator()
        preview = Preview(content, language, {}, path)
        preview.check(self.limits)
        check_path(path)
        try:
            language = self.registry.resolve(language)
        except UnknownRuntimeError as exc:
            raise BadInput(str(exc)) from None
        try:
            _check_lockable(self.registry.get(language), content)
        except ScriptError as exc:
            raise BadInput(script_error_message(exc)) from None
        job = self._new_job(
            actor,
            RunOptions(),
            id=uuid4(),
            workspace_id=workspace_id,
            kind=JobKind.DEPENDENCIES,
            tag=DEPENDENCY_TAG,
            args={},
            language=language,
            runnable_path=path,
            raw_code=content,
            audit_operation="jobs.run.dependencies",
        )
        return await self._push(_Runnable(job, content, None))

    async def lock_flow_dependencies(
        self,
        workspace_id: str,
        actor: Actor,
        flow_value: Mapping[str, Any],
        path: str,
        *,
        access: Access | None = None,
    ) -> UUID:
        """Queue a dependency job locking every inline script of a flow value that is not
        saved (Windmill's ``jobs/run/flow_dependencies_async``); return its id. Its result
        is Windmill's ``{"updated_flow_value": ...}``: the value with each script's
        ``lock`` set. A script whose language or code is unusable is refused now (400)."""
        if access is not None:
            access.require_not_operator()
        check_path(path)
        parse_flow({"summary": "", "value": flow_value})
        value = dict(flow_value)
        for module_id, script in inline_scripts(value):
            content, language = script.get("content"), script.get("language")
            if not isinstance(content, str) or not isinstance(language, str):
                continue  # the flow's own checks judge it when it is saved or run
            try:
                _check_lockable(self.registry.get(self.registry.resolve(language)), content)
            except (UnknownRuntimeError, ScriptError) as exc:
                raise BadInput(f'module "{module_id}" (rawscript): {exc}') from None
        code = orjson.dumps(value).decode()
        check_script_size(code, self.limits)
        job = self._new_job(
            actor,
            RunOptions(),
            id=uuid4(),
            workspace_id=workspace_id,
            kind=JobKind.FLOWDEPENDENCIES,
            tag=DEPENDENCY_TAG,
            args={},
            runnable_path=path,
            raw_code=code,
            audit_operation="jobs.run.flow_dependencies",
        )
        return await self._push(_Runnable(job, code, None))

    def _check_args(
        self, schema: Mapping[str, Any] | None, args: Mapping[str, Any], language: str
    ) -> dict[str, Any]:
        runtime_limit = None
        if language in self.registry:
            # A runtime that passes arguments on the command line says how much fits.
            runtime_limit = getattr(self.registry.get(language), "max_args_bytes", None)
        return check_args(schema, args, self.limits, runtime_limit=runtime_limit, language=language)

    def forget_script(self, workspace_id: str, path: str) -> None:
        """A new version was saved at ``path``: stop using the cached one."""
        self.cache.drop(workspace_id, path)

    async def _live_script(self, workspace_id: str, path: str) -> dict[str, Any]:
        row = await fetch_live(self.pool, workspace_id, path)
        self.cache.put(workspace_id, path, row)
        return row

    # -- queueing --------------------------------------------------------------------------

    async def _push(self, runnable: _Runnable) -> UUID:
        """Queue the job; a request repeating one (its job id or Idempotency-Key taken by a
        job it matches) answers with that job, and one that does not match is refused
        (:class:`~gristmill.errors.RepeatMismatch`, raised by the push)."""
        try:
            return await self._insert(runnable)
        except AlreadySubmitted as repeated:
            return repeated.job_id

    async def _insert(self, runnable: _Runnable) -> UUID:
        job = runnable.job
        if runnable.lock_error_logs is not None:
            return await self._record_unrunnable(
                job, JobErrorName.LOCK, lock_error_message(runnable.lock_error_logs)
            )
        refusal = await self.capabilities.refusal(job.tag) if self.capabilities else None
        if refusal is not None:
            return await self._record_unrunnable(job, JobErrorName.TOOLCHAIN_MISSING, refusal)
        reservation = None
        if self.reserve is not None and job.scheduled_for is None:
            reservation = self.reserve(job.tag)
        if reservation is None:
            async with self.pool.connection() as conn:
                await push_job(conn, job, live_hash=runnable.live_hash)
            if TRACE.enabled:
                TRACE.mark(job.id, "inserted")
            return job.id
        try:
            async with self.pool.connection() as conn:
                claimed = await push_claimed_job(
                    conn,
                    job,
                    worker=reservation.worker,
                    code=runnable.code,
                    schema=runnable.schema,
                    lock=runnable.lock,
                    lock_error_logs=runnable.lock_error_logs,
                    live_hash=runnable.live_hash,
                )
        except BaseException:
            reservation.release()
            raise
        if TRACE.enabled:
            TRACE.mark(job.id, "inserted")
        reservation.hand(claimed)
        if TRACE.enabled:
            TRACE.mark(job.id, "handed")
        return job.id

    async def _record_unrunnable(self, job: NewJob, name: str, reason: str) -> UUID:
        result = error_result(name, reason)
        async with self.pool.connection() as conn:
            await push_failed_job(conn, job, result)
        self.notifier.deliver_done(str(job.id), JobDone(JobStatus.FAILURE, result))
        return job.id

    # -- waiting ---------------------------------------------------------------------------

    async def run_and_wait(
        self,
        workspace_id: str,
        job_id: UUID,
        start: Callable[[], Awaitable[UUID]],
        *,
        timeout_s: float,
        queue_limit: int | None,
        scheduled_for: dt.datetime | None = None,
    ) -> JobDone:
        """Queue a job with ``start`` (which must use ``job_id``) and wait for its outcome.

        A job scheduled to start after the wait ends could only time out: refused."""
        _refuse_late_start(scheduled_for, timeout_s)
        await check_queue_limit(self.pool, workspace_id, queue_limit)
        # Listen for the completion before queueing, so that even an instant result is seen.
        future = self.notifier.expect_done(str(job_id))
        try:
            await start()
        except BaseException:
            self.notifier.forget(str(job_id), future)
            raise
        done = await wait_for_completion(
            self.pool, self.notifier, workspace_id, job_id, timeout_s, future=future
        )
        if TRACE.enabled:
            TRACE.mark(job_id, "woken")
        return done

    async def run_named_and_wait(
        self,
        workspace_id: str,
        start: Callable[[], Awaitable[UUID]],
        *,
        timeout_s: float,
        queue_limit: int | None,
        scheduled_for: dt.datetime | None = None,
    ) -> tuple[UUID, JobDone]:
        """:meth:`run_and_wait` for a request carrying a job id or an Idempotency-Key: its
        ``start`` may answer with a job submitted before (finished long ago, or with another
        id than the request's), whose outcome is then read from the database at once, and
        waited for while it runs. The job's id and outcome."""
        _refuse_late_start(scheduled_for, timeout_s)
        await check_queue_limit(self.pool, workspace_id, queue_limit)
        job_id = await start()
        # Listening before the look-up and kept after it: a completion that comes while the
        # database is read is not missed.
        future = self.notifier.expect_done(str(job_id))
        try:
            stored = await _stored_outcome(self.pool, workspace_id, job_id)
        except BaseException:
            self.notifier.forget(str(job_id), future)
            raise
        if stored is not None:
            self.notifier.forget(str(job_id), future)
            return job_id, stored
        done = await wait_for_completion(
            self.pool, self.notifier, workspace_id, job_id, timeout_s, future=future
        )
        return job_id, done


async def _stored_outcome(
    pool: AsyncConnectionPool, workspace_id: str, job_id: UUID
) -> JobDone | None:
    """A job's outcome as recorded: a flow's early result first (what its synchronous
    callers get), else the finished job's; ``None`` while it runs."""
    early = await early_result(pool, workspace_id, job_id)
    if early is not None:
        return JobDone(JobStatus.SUCCESS, early)
    stored = await completed_result(pool, workspace_id, job_id)
    return None if stored is None else JobDone(stored.status, stored.result)


def _refuse_late_start(scheduled_for: dt.datetime | None, timeout_s: float) -> None:
    """A job scheduled to start after a synchronous run stops waiting could only time out."""
    if scheduled_for is not None:
        delay = (scheduled_for - dt.datetime.now(dt.UTC)).total_seconds()
        if delay >= timeout_s:
            raise BadInput(
                f"the job would start {delay:.0f} s from now (scheduled_for or "
                f"scheduled_in_secs), after a synchronous run stops waiting "
                f"(TIMEOUT_WAIT_RESULT={timeout_s:g} s); queue it with jobs/run/... and "
                "fetch its result later"
            )


def _check_lockable(runtime: Runtime, content: str) -> None:
    """Raise :class:`ScriptError` now for code a dependency job could not lock: its
    signature, and the requirements read from it (a bad one is a 400, not a failed job)."""
    runtime.parse_signature(content)
    if isinstance(runtime, DependencyLocking):
        runtime.lock_inputs(content)
