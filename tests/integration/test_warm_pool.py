"""The warm pool's bounds and failures, with the real Python runtime and interpreter, no
database: parents are bounded per worker (count and memory) and evicted least recently used,
a changed environment gets a new parent, and a parent that cannot be kept warm says why (the
caller then runs its jobs cold)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import JobContext, WarmSpec
from gristmill.sandbox.backends.none import NoSandbox
from gristmill.sandbox.spec import Limits
from gristmill.warm import WarmPool, WarmUnavailable
from gristmill_python.runtime import PythonRuntime

from .test_sandbox_hostile import _processes_running

pytestmark = pytest.mark.bundled_plugins

CODE = "import os\ndef main(x: int = 0):\n    return [x, os.environ.get('WHO')]\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def runtime() -> PythonRuntime:
    return PythonRuntime()


def context(workdir: Path, code: str = CODE, **args: Any) -> JobContext:
    return JobContext(
        id=uuid.uuid4(),
        workspace_id="main",
        language="python3",
        code=code,
        args=args,
        job_dir=workdir / "job",
        env={"PATH": "/usr/bin:/bin"},
    )


@pytest.fixture
def pool(workdir: Path) -> Iterator[WarmPool]:
    pool = WarmPool(NoSandbox(), workdir / "jobs", max_processes=2, max_memory_mb=1024)
    yield pool
    pool.close()


async def run(pool: WarmPool, spec: WarmSpec, runtime: PythonRuntime, ctx: JobContext) -> Any:
    done = await pool.run(
        spec,
        limits=Limits(),
        network=True,
        env={"PATH": "/usr/bin:/bin", "WHO": "me"},
        payload=runtime.warm_payload(ctx),
        timeout_s=30,
        on_output=lambda text: None,
        cancel=asyncio.Event(),
        max_log_bytes=None,
        max_result_bytes=None,
    )
    assert done.returncode == 0 and done.result is not None, done
    return done.result.decode()


def environment(spec: WarmSpec, name: str) -> WarmSpec:
    """Another environment: what differs is part of the parent's key."""
    return replace(spec, env={**spec.env, "ENVIRONMENT": name})


async def test_parents_are_reused_bounded_and_evicted_least_recently_used(
    pool: WarmPool, runtime: PythonRuntime, workdir: Path
) -> None:
    ctx = context(workdir, x=1)
    base = runtime.warm_spec(ctx)
    assert base is not None
    a, b, c = (environment(base, n) for n in "abc")
    assert await run(pool, a, runtime, ctx) == '[1,"me"]'
    assert await run(pool, a, runtime, ctx) == '[1,"me"]'
    assert pool.stats()["parents"] == 1, "the same environment reuses its parent"
    await run(pool, b, runtime, ctx)
    await run(pool, a, runtime, ctx)  # b is now the least recently used
    key = {n: pool.key(s, Limits(), True) for n, s in zip("abc", (a, b, c), strict=True)}
    await run(pool, c, runtime, ctx)
    assert pool.stats()["parents"] == 2
    assert set(pool._parents) == {key["a"], key["c"]}


async def test_the_memory_bound_evicts_too(runtime: PythonRuntime, workdir: Path) -> None:
    pool = WarmPool(NoSandbox(), workdir / "jobs", max_processes=8, max_memory_mb=16)
    try:
        ctx = context(workdir)
        base = runtime.warm_spec(ctx)
        assert base is not None
        for name in "abc":
            await run(pool, environment(base, name), runtime, ctx)
        # Each parent is over 16 MB resident: only the newest is kept.
        assert pool.stats()["parents"] == 1 and pool.stats()["rss_mb"] >= 16
    finally:
        pool.close()


def test_a_changed_environment_has_another_key(
    pool: WarmPool, runtime: PythonRuntime, workdir: Path
) -> None:
    spec = runtime.warm_spec(context(workdir))
    assert spec is not None
    key = pool.key(spec, Limits(), True)
    assert pool.key(spec, Limits(), True) == key
    assert pool.key(replace(spec, deps_dir="/elsewhere"), Limits(), True) != key
    assert pool.key(spec, Limits(memory_mb=64), True) != key
    assert pool.key(spec, Limits(), False) != key


async def test_a_parent_that_cannot_start_says_why_and_is_not_retried_at_once(
    pool: WarmPool, runtime: PythonRuntime, workdir: Path
) -> None:
    ctx = context(workdir)
    spec = runtime.warm_spec(ctx)
    assert spec is not None
    broken = replace(spec, entry=str(workdir / "missing.py"))
    with pytest.raises(WarmUnavailable, match=r"missing\.py"):
        await run(pool, broken, runtime, ctx)
    launched = []
    launch = pool.backend.launch
    pool.backend.launch = lambda *a, **k: launched.append(a) or launch(*a, **k)  # type: ignore[method-assign]
    # Within RETRY_AFTER_S the same environment fails at once, without a new parent.
    with pytest.raises(WarmUnavailable, match=r"missing\.py"):
        await run(pool, broken, runtime, ctx)
    assert launched == []
    await run(pool, spec, runtime, ctx)  # the control: another environment starts one
    assert len(launched) == 1


async def test_a_package_that_starts_a_thread_is_not_forked(
    pool: WarmPool, runtime: PythonRuntime, workdir: Path
) -> None:
    deps = workdir / "deps"
    deps.mkdir()
    (deps / "threader.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    )
    ctx = replace(context(workdir), deps_dir=deps, lock="threader==1")
    spec = runtime.warm_spec(ctx)
    assert spec is not None and "threader" in spec.preload
    with pytest.raises(WarmUnavailable, match="threads: a fork would copy only one"):
        await run(pool, spec, runtime, ctx)


async def test_without_a_sandbox_what_a_job_leaves_running_ends_with_it(
    pool: WarmPool, runtime: PythonRuntime, workdir: Path
) -> None:
    """No namespace ends a job under the ``none`` backend: its process group does, as a
    cold job's."""
    code = (
        "import subprocess\n"
        "def main():\n"
        "    subprocess.Popen(['sleep', '347'])\n"
        "    subprocess.Popen(['setsid', 'sleep', '347'])\n"
        "    return 'left'\n"
    )
    ctx = context(workdir, code)
    spec = runtime.warm_spec(ctx)
    assert spec is not None
    assert await run(pool, spec, runtime, ctx) == '"left"'
    await asyncio.sleep(0.3)
    # The one that left the group (setsid) is the none backend's known gap, as cold.
    assert len(_processes_running("sleep 347")) <= 1
