"""Running one job of a runtime for real, without a database or a worker.

The job goes through the same code as a worker's (:func:`gristmill.worker.execution.execute`): the
runtime prepares it, its steps run as processes, its outcome is read.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gristmill.runtimes import ARGS_FILE, JobContext, JobOutcome, Runtime
from gristmill.runtimes.schema import signature_to_schema
from gristmill.sandbox import RunPolicy
from gristmill.worker.execution import LockOutcome, execute, lock_job

__all__ = ["RanJob", "lock_script", "make_context", "run_job"]


@dataclass(frozen=True)
class RanJob:
    outcome: JobOutcome
    logs: str
    job_dir: Path

    @property
    def result(self) -> Any:
        return json.loads(self.outcome.result_json)


def make_context(
    runtime: Runtime,
    code: str,
    args: dict[str, Any],
    root: Path,
    *,
    timeout_s: float = 120.0,
    cache_dir: Path | None = None,
    lock: str | None = None,
) -> JobContext:
    """A job context as a worker makes it: a fresh job directory holding ``args.json``, the
    schema the API would have stored, a job environment with the ``WM_*`` variables."""
    job_id = uuid.uuid4()
    job_dir = root / f"job-{job_id.hex[:12]}"
    job_dir.mkdir(parents=True)
    (job_dir / ARGS_FILE).write_text(json.dumps(args), encoding="utf-8")
    cache = cache_dir or root / "cache" / runtime.name
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(job_dir),
        "LANG": "C.UTF-8",
        "WM_WORKSPACE": "main",
        "WM_JOB_ID": str(job_id),
        "WM_JOB_PATH": "",
        "BASE_INTERNAL_URL": "http://127.0.0.1:8000",
    }
    return JobContext(
        id=job_id,
        workspace_id="main",
        language=runtime.name,
        code=code,
        args=args,
        job_dir=job_dir,
        schema=signature_to_schema(runtime.parse_signature(code)),
        env=env,
        timeout_s=timeout_s,
        cache_dir=cache,
        lock=lock,
    )


async def run_job_async(
    runtime: Runtime,
    code: str,
    args: dict[str, Any],
    root: Path,
    *,
    timeout_s: float = 120.0,
    cache_dir: Path | None = None,
    lock: str | None = None,
    policy: RunPolicy | None = None,
) -> RanJob:
    ctx = make_context(
        runtime, code, args, root, timeout_s=timeout_s, cache_dir=cache_dir, lock=lock
    )
    output: list[str] = []
    # Environments go beside the runtime's cache directory (execute's default, as a worker).
    execution = await execute(
        runtime, ctx, on_output=output.append, cancel=asyncio.Event(), policy=policy
    )
    assert execution.outcome is not None
    return RanJob(execution.outcome, "".join(output), ctx.job_dir)


def run_job(
    runtime: Runtime,
    code: str,
    args: dict[str, Any],
    root: Path,
    *,
    timeout_s: float = 120.0,
    cache_dir: Path | None = None,
    lock: str | None = None,
    policy: RunPolicy | None = None,
) -> RanJob:
    """Run ``code`` with ``args`` as a job of ``runtime`` under ``root``; wait for its end.

    A runtime with dependencies locks them first (unless ``lock`` is given) and installs
    them into ``<cache_dir>/../envs``, as a worker does. ``policy`` runs the steps in a
    sandbox (see the ``sandbox_policy`` fixture); by default they run unsandboxed."""
    return asyncio.run(
        run_job_async(
            runtime,
            code,
            args,
            root,
            timeout_s=timeout_s,
            cache_dir=cache_dir,
            lock=lock,
            policy=policy,
        )
    )


def lock_script(
    runtime: Runtime,
    code: str,
    root: Path,
    *,
    timeout_s: float = 120.0,
    cache_dir: Path | None = None,
) -> tuple[LockOutcome, str]:
    """Run the dependency job of ``code``: its lock (or the failure) and the job's logs."""
    ctx = make_context(runtime, code, {}, root, timeout_s=timeout_s, cache_dir=cache_dir)
    output: list[str] = []
    outcome = asyncio.run(lock_job(runtime, ctx, on_output=output.append, cancel=asyncio.Event()))
    return outcome, "".join(output)
