"""Running a prepared job: the runtime's steps in order, then its outcome.

Shared by the workers and by ``gristmill.testing`` (which runs jobs without a database).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gristmill.executor import run_recipe
from gristmill.runtime import JobContext, JobOutcome, ProcessExit, Recipe, Runtime, error_result

__all__ = ["Execution", "execute"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Execution:
    """How a job ended: its outcome, or ``canceled`` when ``cancel`` stopped it (the caller
    knows why and what to record)."""

    outcome: JobOutcome | None
    canceled: bool = False


def _failure(name: str, message: str) -> Execution:
    return Execution(JobOutcome(False, error_result(name, message)))


async def execute(
    runtime: Runtime,
    ctx: JobContext,
    *,
    on_output: Callable[[str], None],
    cancel: asyncio.Event,
    on_step: Callable[[str], None] = lambda phase: None,
) -> Execution:
    """Prepare the job, run its steps within ``ctx.timeout_s``, and read its outcome."""
    try:
        prepared = runtime.prepare(ctx)
    except Exception as exc:
        log.exception("preparing job %s failed", ctx.id)
        return _failure("PrepareError", f"{runtime.name} could not prepare the job: {exc}")
    steps = [prepared] if isinstance(prepared, Recipe) else list(prepared)
    if not steps:
        return _failure("PrepareError", f"{runtime.name} returned nothing to run")
    on_step("prepare")
    deadline = time.monotonic() + ctx.timeout_s
    for index, step in enumerate(steps):
        try:
            result = await run_recipe(
                step,
                timeout_s=max(0.0, deadline - time.monotonic()),
                on_output=on_output,
                cancel=cancel,
            )
        except OSError as exc:
            return _failure(
                "ExecutionErr",
                f"could not start {step.argv[0]!r} ({step.phase}): {exc.strerror or exc}. "
                f"Is the {runtime.display_name} toolchain installed on this worker?",
            )
        on_step(step.phase)
        if result.canceled:
            return Execution(None, canceled=True)
        if result.timed_out:
            return _failure(
                "ExecutionErr",
                f"job timed out after {ctx.timeout_s:g} s (its timeout) during {step.phase}; "
                "the job's process and everything it started were killed",
            )
        if index < len(steps) - 1:
            if result.returncode != 0:
                tail = result.output_tail.strip()
                return _failure(
                    step.failure_name,
                    f"{step.phase} failed (exit code {result.returncode})"
                    + (f":\n{tail}" if tail else ""),
                )
            continue
        exit = ProcessExit(result.returncode, result.last_line, result.output_tail)
        try:
            return Execution(runtime.collect_result(ctx, exit))
        except Exception as exc:
            log.exception("reading the result of job %s failed", ctx.id)
            return _failure("ResultError", f"the job's result could not be read: {exc}")
    raise AssertionError("unreachable")
