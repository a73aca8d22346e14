"""The warm pool's bounds and failures, with the real Python runtime and interpreter, no
database: parents are bounded per worker (count and memory) and evicted least recently used,
a changed environment gets a new parent, and a parent that cannot be kept warm says why (the
caller then runs its jobs cold)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import JobContext, WarmSpec
from gristmill.sandbox.backends.none import NoSandbox
from gristmill.sandbox.spec import Limits
from gristmill.warm import FORKSERVER, WarmPool, WarmUnavailable
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
    seconds = f"347.{uuid.uuid4().int % 10**6}"  # this run's own, to find its processes
    code = (
        "import subprocess\n"
        "def main(seconds: str):\n"
        "    subprocess.Popen(['sleep', seconds])\n"
        "    return 'left'\n"
    )
    ctx = context(workdir, code, seconds=seconds)
    spec = runtime.warm_spec(ctx)
    assert spec is not None
    assert await run(pool, spec, runtime, ctx) == '"left"'
    await asyncio.sleep(0.3)
    left = _processes_running(f"sleep {seconds}")
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    # (One that leaves the group, setsid, outlives it: the none backend's known gap, as cold.)
    assert left == []


async def test_more_jobs_of_one_environment_at_once_than_spares(
    pool: WarmPool, runtime: PythonRuntime, workdir: Path
) -> None:
    """Four jobs that wait for each other (a barrier on the host's disk: no sandbox) all run
    at once in children of one parent, though it keeps two spares."""
    barrier = workdir / "barrier"
    barrier.mkdir()
    code = (
        "import os, time\n"
        "def main(me: int, barrier: str):\n"
        "    open(os.path.join(barrier, str(me)), 'w').close()\n"
        "    deadline = time.monotonic() + 10\n"
        "    while len(os.listdir(barrier)) < 4:\n"
        "        assert time.monotonic() < deadline, 'the others never started'\n"
        "        time.sleep(0.01)\n"
        "    return me\n"
    )
    contexts = [context(workdir, code, me=i, barrier=str(barrier)) for i in range(4)]
    spec = runtime.warm_spec(contexts[0])
    assert spec is not None
    results = await asyncio.wait_for(
        asyncio.gather(*(run(pool, spec, runtime, ctx) for ctx in contexts)), 30
    )
    assert sorted(results) == ["0", "1", "2", "3"]
    assert pool.stats()["parents"] == 1


async def test_what_the_sandbox_mounts_under_tmp_stays_visible_to_a_job(
    runtime: PythonRuntime, sandbox_data_dir: Path
) -> None:
    """A toolchain (a checkout) under /tmp: the sandbox binds it at its own path, and a warm
    child's own /tmp must not hide it (Bun's binary lives there in a checkout under /tmp)."""
    from gristmill.config import Settings
    from gristmill.runtimes import Mount
    from gristmill.sandbox import select_backend

    shared = Path(tempfile.mkdtemp(prefix="gm-warm-tmp-", dir="/tmp"))
    try:
        shared.chmod(0o755)
        (shared / "f.txt").write_text("seen")
        (shared / "f.txt").chmod(0o644)
        backend = select_backend(Settings(data_dir=sandbox_data_dir, sandbox="bwrap"))
        pool = WarmPool(backend, sandbox_data_dir / "jobs", max_processes=2)
        try:
            code = (
                "import os\n"
                "def main(path: str):\n"
                "    open('/tmp/mine', 'w').write('x')\n"
                "    return [open(path).read(), sorted(os.listdir('/tmp'))]\n"
            )
            ctx = context(sandbox_data_dir, code, path=str(shared / "f.txt"))
            spec = runtime.warm_spec(ctx)
            assert spec is not None
            spec = replace(spec, mounts=[*spec.mounts, Mount(str(shared))])
            result = json.loads(await run(pool, spec, runtime, ctx))
            # Its own /tmp: the job's file, and the ways to what the sandbox mounts there
            # (this test's directory; the checkout, when it is under /tmp); nothing else.
            ways = {
                Path(path).relative_to("/tmp").parts[0]
                for path in [*(m.source for m in spec.mounts), FORKSERVER]
                if path.startswith("/tmp/")
            }
            assert result[0] == "seen"
            assert set(result[1]) == {"mine", *ways} and shared.name in ways
        finally:
            pool.close()
            backend.close()
    finally:
        shutil.rmtree(shared, ignore_errors=True)
