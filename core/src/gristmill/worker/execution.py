"""Running a job: its dependencies locked and installed when it has some, then the runtime's
steps in order, then its outcome.

Shared by the workers and by ``gristmill.testing`` (which runs jobs without a database).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import orjson

from gristmill.errors import JobErrorName
from gristmill.queue.trace import TRACE
from gristmill.runtimes import (
    ARGS_FILE,
    RESULT_FILE,
    DependencyLocking,
    JobContext,
    JobOutcome,
    ProcessExit,
    Recipe,
    RecipeError,
    Runtime,
    ScriptError,
    WarmStart,
    error_result,
    read_result_text,
)
from gristmill.sandbox import RunPolicy, SandboxError
from gristmill.sandbox.diagnose import limit_message
from gristmill.sandbox.spec import Mount, is_under
from gristmill.warm import WarmPool, WarmUnavailable
from gristmill.worker.environments import EnvironmentCache
from gristmill.worker.processes import ProcessResult, run_recipe

__all__ = ["Execution", "LockOutcome", "execute", "lock_job"]

log = logging.getLogger(__name__)

#: How long a lock resolved on the fly (a preview, a version whose lock job has not run yet)
#: is reused for the same inputs, as Windmill's resolution cache.
RESOLUTION_REUSE_S = 300.0


@dataclass(frozen=True)
class Execution:
    """How a job ended: its outcome, or ``canceled`` when ``cancel`` stopped it (the caller
    knows why and what to record)."""

    outcome: JobOutcome | None
    canceled: bool = False


@dataclass(frozen=True)
class LockOutcome:
    """The end of a lock phase: the lock (``""`` when the script needs nothing), or an error
    whose ``logs`` are the resolver's output."""

    lock: str | None
    error: Execution | None = None
    logs: str = ""


def _failure(name: str, message: str) -> Execution:
    return Execution(JobOutcome(False, error_result(name, message)))


@dataclass
class _Steps:
    """Runs recipes within one deadline, with the job's output and cancel."""

    runtime: Runtime
    ctx: JobContext
    on_output: Callable[[str], None]
    cancel: asyncio.Event
    on_step: Callable[[str], None]
    deadline: float
    policy: RunPolicy | None = None
    #: Added to the job's own steps (same_worker flows: the flow's shared directory).
    mounts: Sequence[Mount] = ()

    async def run(self, step: Recipe) -> ProcessResult | Execution:
        """The step's process result, or the job's end (cancel, timeout, cannot start)."""
        try:
            result = await run_recipe(
                step,
                timeout_s=max(0.0, self.deadline - time.monotonic()),
                on_output=self.on_output,
                cancel=self.cancel,
                policy=self.policy,
            )
        except RecipeError as exc:
            return _failure(
                JobErrorName.PREPARE,
                f"{self.runtime.name} returned an invalid {step.phase} step: {exc}",
            )
        except SandboxError as exc:
            return _failure(
                JobErrorName.EXECUTION, f"the sandbox cannot start the {step.phase} step: {exc}"
            )
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                # Not a missing toolchain: the command line (arguments and environment) is
                # over the operating system's limit.
                size = sum(len(a) for a in step.argv) + sum(len(v) for v in step.env.values())
                return _failure(
                    JobErrorName.EXECUTION,
                    f"could not start the {step.phase} step: its command line and environment "
                    f"({size} characters) are over the operating system's limit (E2BIG); pass "
                    "large data by reference rather than as arguments",
                )
            return _failure(
                JobErrorName.EXECUTION,
                f"could not start {step.argv[0]!r} ({step.phase}): {exc.strerror or exc}. "
                f"Is the {self.runtime.display_name} toolchain installed on this worker?",
            )
        self.on_step(step.phase)
        if result.canceled:
            return Execution(None, canceled=True)
        if result.timed_out:
            return _timed_out(self.ctx, step.phase)
        return result

    async def run_all(self, steps: Sequence[Recipe]) -> Execution | None:
        """Run steps that must all succeed; ``None`` when they did."""
        for step in steps:
            result = await self.run(step)
            if isinstance(result, Execution):
                return result
            if result.returncode != 0:
                tail = result.output_tail.strip()
                return _failure(
                    step.failure_name,
                    f"{step.phase} failed (exit code {result.returncode})"
                    + (f":\n{tail}" if tail else ""),
                )
        return None


def _timed_out(ctx: JobContext, phase: str) -> Execution:
    return _failure(
        JobErrorName.EXECUTION,
        f"job timed out after {ctx.timeout_s:g} s (its timeout) during {phase}; the job's "
        "process and everything it started were killed",
    )


def _as_steps(prepared: Recipe | Sequence[Recipe]) -> list[Recipe]:
    return [prepared] if isinstance(prepared, Recipe) else list(prepared)


async def execute(
    runtime: Runtime,
    ctx: JobContext,
    *,
    on_output: Callable[[str], None],
    cancel: asyncio.Event,
    on_step: Callable[[str], None] = lambda phase: None,
    environments: EnvironmentCache | None = None,
    policy: RunPolicy | None = None,
    mounts: Sequence[Mount] = (),
) -> Execution:
    """Lock and install the job's dependencies when it has some, prepare the job, run its
    steps within ``ctx.timeout_s`` under ``policy`` (default: no sandbox), and read its
    outcome. ``mounts`` are added to the steps run in the job's directory."""
    runner = _Steps(
        runtime,
        ctx,
        on_output,
        cancel,
        on_step,
        time.monotonic() + ctx.timeout_s,
        policy,
        mounts,
    )
    if not isinstance(runtime, DependencyLocking):
        return await _run(runner, ctx)
    if ctx.lock is not None:
        locked = LockOutcome(ctx.lock)
    else:
        # A preview, or a version whose dependency job has not ended: lock it now.
        locked = await _resolve_lock(runtime, runner, ctx, reuse_recent=True)
    if locked.error is not None:
        return locked.error
    if not locked.lock:
        return await _run(runner, replace(ctx, lock=locked.lock))
    envs = environments or _default_environments(ctx)
    lock = locked.lock

    async def build(target: Path) -> Execution | None:
        materialize(ctx)
        on_output(f"[gristmill] installing the dependencies of this lock into {target.parent}\n")
        try:
            steps = _as_steps(runtime.prepare_install(ctx, lock, target))
        except ScriptError as exc:
            return _failure(JobErrorName.INSTALL, str(exc))
        except Exception as exc:
            log.exception("preparing the install of job %s failed", ctx.id)
            return _failure(
                JobErrorName.INSTALL, f"{runtime.name} could not prepare the install: {exc}"
            )
        return await runner.run_all(steps)

    async with envs.use(runtime.name, lock, build) as (deps_dir, failure):
        if failure is not None:
            return failure
        return await _run(runner, replace(ctx, lock=lock, deps_dir=deps_dir))


async def _run(runner: _Steps, ctx: JobContext) -> Execution:
    runtime = runner.runtime
    runner.ctx = ctx
    # A flow's shared directory (runner.mounts) is a host directory a warm child cannot see.
    pool = runner.policy.warm if runner.policy is not None else None
    if pool is not None and not runner.mounts and isinstance(runtime, WarmStart):
        warm = await _run_warm(runner, runtime, pool, ctx)
        if warm is not None:
            return warm
    try:
        materialize(ctx)
        steps = _as_steps(runtime.prepare(ctx))
    except Exception as exc:
        log.exception("preparing job %s failed", ctx.id)
        return _failure(JobErrorName.PREPARE, f"{runtime.name} could not prepare the job: {exc}")
    if not steps:
        return _failure(JobErrorName.PREPARE, f"{runtime.name} returned nothing to run")
    if runner.mounts:
        # Only to the steps in the job's directory: a step elsewhere (a build in a cache)
        # may not see into the jobs directory at all (gristmill.sandbox.base.Protected).
        job_dir = str(ctx.job_dir)
        steps = [
            replace(s, mounts=(*s.mounts, *runner.mounts)) if is_under(str(s.cwd), job_dir) else s
            for s in steps
        ]
    runner.on_step("prepare")
    failed = await runner.run_all(steps[:-1])
    if failed is not None:
        return failed
    result = await runner.run(steps[-1])
    if isinstance(result, Execution):
        return result
    exit = ProcessExit(result.returncode, result.last_line, result.output_tail)
    limit = (runner.policy or _DEFAULT_POLICY).max_result_bytes
    # Checked before the runtime reads the file: a result is held whole in memory.
    too_big = _result_too_big(_file_size(ctx.job_dir / RESULT_FILE), limit)
    if too_big is not None:
        return too_big
    try:
        outcome = runtime.collect_result(ctx, exit)
    except Exception as exc:
        log.exception("reading the result of job %s failed", ctx.id)
        return _failure(JobErrorName.RESULT, f"the job's result could not be read: {exc}")
    return _result_too_big(len(outcome.result_json.encode()), limit) or Execution(outcome)


_DEFAULT_POLICY = RunPolicy()


def materialize(ctx: JobContext) -> None:
    """The job's directory with its ``args.json``, as a cold step expects them (made once;
    a warm run needs neither, and skips the writes and their removal)."""
    args_file = ctx.job_dir / ARGS_FILE
    if args_file.exists():
        return
    ctx.job_dir.mkdir(parents=True, exist_ok=True)
    args_file.write_bytes(orjson.dumps(dict(ctx.args)))


async def _run_warm(
    runner: _Steps, runtime: WarmStart, pool: WarmPool, ctx: JobContext
) -> Execution | None:
    """Run the job in a warm child of its environment; ``None``: run it cold instead (the
    runtime has no warm mode for it, or its warm parent could not start, or died under the
    job, which then runs once more, cold)."""
    try:
        spec = runtime.warm_spec(ctx)
        if spec is None:
            return None
        payload = runtime.warm_payload(ctx)
    except Exception:
        log.exception("%s could not describe the warm run of job %s", runner.runtime.name, ctx.id)
        return None
    policy = runner.policy or _DEFAULT_POLICY
    # The worker's policy applies to a warm run as to a run step with the spec's limits.
    probe = Recipe(
        argv=list(spec.argv) or ["-"],
        env=spec.env,
        cwd=ctx.job_dir,
        limits=spec.limits,
        network=None,
    )
    limits = policy.limits_for(probe)
    env = dict(ctx.env)
    if "HOME" in env:
        env["HOME"] = "/tmp"  # the job's directory is not there: a child's HOME is its /tmp
    if TRACE.enabled:
        TRACE.mark(ctx.id, "prepare")
    try:
        run = await pool.run(
            spec,
            limits=limits,
            network=policy.network_for(probe),
            env=env,
            payload=payload,
            timeout_s=max(0.0, runner.deadline - time.monotonic()),
            on_output=runner.on_output,
            cancel=runner.cancel,
            max_log_bytes=policy.max_log_bytes,
            max_result_bytes=policy.max_result_bytes,
        )
    except WarmUnavailable as exc:
        log.info("job %s runs cold: %s", ctx.id, exc)
        return None
    runner.on_step("run")
    if run.crashed:
        runner.on_output(
            "\n[gristmill] the warm process of this job's environment died under it; "
            "the job runs once more, cold\n"
        )
        return None
    if run.canceled:
        return Execution(None, canceled=True)
    if run.timed_out:
        return _timed_out(ctx, "run")
    if run.result_too_big:
        return _result_too_big(run.result_size, policy.max_result_bytes)
    exit = ProcessExit(run.returncode, run.last_line, run.output_tail)
    if run.returncode != 0:
        why = limit_message(limits, run.returncode, run.output_tail, sandboxed=pool.isolates)
        if why:
            runner.on_output(f"[gristmill] {why}\n")
    text = run.result.decode("utf-8", "replace") if run.result is not None else None
    outcome = read_result_text(text, exit)
    limit = policy.max_result_bytes
    return _result_too_big(len(outcome.result_json.encode()), limit) or Execution(outcome)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _result_too_big(size: int, limit: int | None) -> Execution | None:
    if limit is None or size <= limit:
        return None
    return _failure(
        JobErrorName.RESULT_TOO_LARGE,
        f"the job's result is {size / 1048576:.1f} MB, over the limit of "
        f"{limit / 1048576:g} MB (GRISTMILL_MAX_RESULT_SIZE_MB); return a smaller result, "
        "and keep large data in a file or an object store",
    )


def _default_environments(ctx: JobContext) -> EnvironmentCache:
    # The runtime's cache directory is <cache root>/<runtime>; environments sit beside it.
    base = ctx.cache_dir.parent if ctx.cache_dir is not None else ctx.job_dir.parent / "cache"
    return EnvironmentCache(base / "envs")


async def _resolve_lock(
    runtime: DependencyLocking, runner: _Steps, ctx: JobContext, *, reuse_recent: bool
) -> LockOutcome:
    """Resolve the script's lock now (``""`` when it needs nothing); with ``reuse_recent``,
    a lock resolved for the same inputs in the last few minutes is taken instead. A
    resolved lock is kept for the next ones either way."""
    try:
        inputs = runtime.lock_inputs(ctx.code)
    except ScriptError as exc:
        message = f"the script's requirements: {exc}"
        return LockOutcome(None, _failure(JobErrorName.LOCK, message), message)
    if inputs is None:
        return LockOutcome("")
    kept = _resolution_file(ctx, inputs)
    if reuse_recent and kept is not None:
        with contextlib.suppress(OSError):
            if time.time() - kept.stat().st_mtime < RESOLUTION_REUSE_S:
                return LockOutcome(kept.read_text(encoding="utf-8"))
    locked = await _lock(runtime, runner, ctx, inputs)
    if locked.lock is not None and kept is not None:
        _write_atomically(kept, locked.lock)
    return locked


async def _lock(
    runtime: DependencyLocking, runner: _Steps, ctx: JobContext, inputs: str
) -> LockOutcome:
    """Run the lock phase in its own directory inside the job's."""
    lock_ctx = replace(ctx, job_dir=ctx.job_dir / "lock")
    lock_ctx.job_dir.mkdir(parents=True, exist_ok=True)
    output: list[str] = []
    forward = runner.on_output

    def on_output(text: str) -> None:
        output.append(text)
        forward(text)

    lock_runner = replace(runner, ctx=lock_ctx, on_output=on_output)
    try:
        steps = _as_steps(runtime.prepare_lock(lock_ctx, inputs))
    except ScriptError as exc:
        message = f"the script's requirements: {exc}"
        return LockOutcome(None, _failure(JobErrorName.LOCK, message), message)
    except Exception as exc:
        log.exception("preparing the lock of job %s failed", ctx.id)
        message = f"could not prepare the lock: {exc}"
        return LockOutcome(None, _failure(JobErrorName.LOCK, message), message)
    failed = await lock_runner.run_all(steps)
    if failed is not None:
        return LockOutcome(None, failed, "".join(output))
    try:
        return LockOutcome(runtime.read_lock(lock_ctx), None, "".join(output))
    except Exception as exc:
        message = f"the resolver succeeded but its lock could not be read: {exc}"
        return LockOutcome(None, _failure(JobErrorName.LOCK, message), message)


async def lock_job(
    runtime: Runtime,
    ctx: JobContext,
    *,
    on_output: Callable[[str], None],
    cancel: asyncio.Event,
    policy: RunPolicy | None = None,
) -> LockOutcome:
    """A dependency job: resolve the script's lock now (never reusing an earlier one)."""
    materialize(ctx)
    runner = _Steps(
        runtime,
        ctx,
        on_output,
        cancel,
        lambda phase: None,
        time.monotonic() + ctx.timeout_s,
        policy,
    )
    if not isinstance(runtime, DependencyLocking):
        return LockOutcome("")
    return await _resolve_lock(runtime, runner, ctx, reuse_recent=False)


def _resolution_file(ctx: JobContext, inputs: str) -> Path | None:
    if ctx.cache_dir is None:
        return None
    digest = hashlib.sha256(inputs.encode()).hexdigest()[:40]
    return ctx.cache_dir / "resolutions" / digest


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not keep the resolved lock in %s: %s", path, exc)
