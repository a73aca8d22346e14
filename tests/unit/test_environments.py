"""The content-addressed cache of installed dependencies: built once, atomic, collected."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gristmill.worker.environments import EnvironmentCache, lock_key

LOCK = "requests==2.32.3\n"


async def _use_once(cache: EnvironmentCache, builds: list[Path], delay: float = 0.2) -> Path:
    async def build(target: Path) -> str | None:
        builds.append(target)
        (target / "pkg").write_text("installed")
        await asyncio.sleep(delay)
        return None

    async with cache.use("python3", LOCK, build) as (path, failure):
        assert failure is None
        assert (path / "pkg").read_text() == "installed"
        return path


def test_an_environment_is_built_once_for_concurrent_jobs(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path)
    builds: list[Path] = []

    async def main() -> list[Path]:
        return await asyncio.gather(*(_use_once(cache, builds) for _ in range(6)))

    paths = asyncio.run(main())
    assert len(builds) == 1
    assert set(paths) == {tmp_path / "python3" / lock_key(LOCK)}
    # Only the finished environment and its lock file remain: no temporary directory.
    assert sorted(p.name for p in (tmp_path / "python3").iterdir()) == sorted(
        [lock_key(LOCK), lock_key(LOCK) + ".lock"]
    )


_CHILD = """
import asyncio, os, sys, time
from pathlib import Path
from gristmill.worker.environments import EnvironmentCache

async def build(target):
    Path(sys.argv[2], f"built-{os.getpid()}").touch()
    (target / "pkg").write_text("installed")
    time.sleep(0.3)  # a slow install, holding the lock

async def main():
    async with EnvironmentCache(Path(sys.argv[1])).use("python3", sys.argv[3], build) as (p, f):
        assert f is None and (p / "pkg").exists()

asyncio.run(main())
"""


def test_worker_processes_build_an_environment_once(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    argv = [sys.executable, "-c", _CHILD, str(tmp_path / "envs"), str(markers), LOCK]
    procs = [subprocess.Popen(argv) for _ in range(4)]
    assert [proc.wait(60) for proc in procs] == [0, 0, 0, 0]
    assert len(list(markers.iterdir())) == 1


def test_a_failed_build_leaves_nothing_and_is_retried(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path)
    attempts = 0

    async def failing(target: Path) -> str | None:
        nonlocal attempts
        attempts += 1
        (target / "half").write_text("half-installed")
        return "resolver said no"

    async def main() -> None:
        async with cache.use("python3", LOCK, failing) as (_, failure):
            assert failure == "resolver said no"
        async with cache.use("python3", LOCK, failing) as (_, failure):
            assert failure == "resolver said no"

    asyncio.run(main())
    assert attempts == 2  # a failure is not cached as an environment
    assert [p.name for p in (tmp_path / "python3").iterdir()] == [lock_key(LOCK) + ".lock"]


def test_a_build_interrupted_by_cancel_leaves_nothing(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path)

    async def main() -> None:
        task = asyncio.create_task(_use_once(cache, [], delay=30))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert not cache.path_for("python3", LOCK).exists()
    assert [p.name for p in (tmp_path / "python3").iterdir()] == [lock_key(LOCK) + ".lock"]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_gc_removes_environments_unused_for_long(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path)
    old = asyncio.run(_use_once(cache, [], delay=0))
    _age(old, 10 * 86400)
    other_lock = "pyyaml==6.0.2\n"
    fresh = cache.path_for("python3", other_lock)
    fresh.mkdir()
    stale_build = tmp_path / "python3" / ".tmp-abandoned"
    stale_build.mkdir()
    _age(stale_build, 2 * 3600)

    report = cache.gc(max_age_s=7 * 86400, min_free_mb=0)

    assert not old.exists() and not stale_build.exists()
    assert fresh.exists()
    assert set(report.removed) == {old, stale_build}


def test_gc_frees_disk_least_recently_used_first_but_never_an_environment_in_use(
    tmp_path: Path,
) -> None:
    cache = EnvironmentCache(tmp_path)
    in_use_lock = "in-use==1\n"
    older = cache.path_for("python3", "older==1\n")
    newer = cache.path_for("python3", "newer==1\n")
    for index, path in enumerate((older, newer)):
        path.mkdir(parents=True)
        _age(path, 100 - index)

    async def main() -> None:
        async def build(target: Path) -> str | None:
            return None

        async with cache.use("python3", in_use_lock, build) as (path, _):
            _age(path, 1000)  # the oldest of all, but a job holds it
            # An impossible budget: everything unused goes, least recently used first.
            report = cache.gc(max_age_s=1e9, min_free_mb=float("inf"))
            assert report.removed == [older, newer]
            assert report.kept_in_use == 1
            assert path.exists()

    asyncio.run(main())
