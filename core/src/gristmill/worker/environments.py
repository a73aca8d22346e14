"""Installed dependencies, content-addressed by lock: built once per worker host, then shared.

An environment lives at ``<root>/<runtime>/<key>`` where ``key`` is a digest of the lock
text. It is built into a temporary directory and renamed into place only when the install
succeeded, so a directory at a key's path is always complete. Each key has a lock file next
to it: a job using the environment holds it shared, a build or a garbage collection holds it
exclusive, so several workers (processes or hosts sharing the directory) build a given
environment once, and nothing deletes an environment a job is using.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = ["EnvironmentCache", "GcReport", "lock_key"]

T = TypeVar("T")

log = logging.getLogger(__name__)

# A temporary build directory this old belongs to a builder that died.
_STALE_BUILD_S = 3600.0
# How often a job waiting for another worker's build looks again.
_POLL_S = 0.05


def lock_key(lock: str) -> str:
    """The cache key of a lock text."""
    return hashlib.sha256(lock.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class GcReport:
    removed: list[Path]
    kept_in_use: int
    free_mb: float


class EnvironmentCache:
    """The environments under ``root`` (usually ``<data dir>/cache/envs``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, runtime: str, lock: str) -> Path:
        return self.root / runtime / lock_key(lock)

    @contextlib.asynccontextmanager
    async def use(
        self, runtime: str, lock: str, build: Callable[[Path], Awaitable[T | None]]
    ) -> AsyncIterator[tuple[Path, T | None]]:
        """Hold the environment of ``lock`` for the duration of the block, building it first
        when absent: ``build(target)`` fills the empty directory ``target`` and returns
        ``None`` on success, anything else (the failure) otherwise.

        Yields ``(path, None)`` when the environment is ready, ``(path, failure)`` when the
        build failed (nothing is left behind then).
        """
        final = self.path_for(runtime, lock)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(final.with_name(final.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            await _flock(fd, fcntl.LOCK_SH)
            failure: T | None = None
            if not final.is_dir():
                # Upgrading releases the shared lock first: another worker may build it
                # meanwhile, so look again once exclusive.
                await _flock(fd, fcntl.LOCK_EX)
                if not final.is_dir():
                    failure = await self._build(final, build)
                await _flock(fd, fcntl.LOCK_SH)
            if failure is None:
                # The last use, for garbage collection by age.
                with contextlib.suppress(OSError):
                    os.utime(final)
            yield final, failure
        finally:
            os.close(fd)

    async def _build(self, final: Path, build: Callable[[Path], Awaitable[T | None]]) -> T | None:
        target = final.with_name(f".tmp-{final.name}-{uuid.uuid4().hex[:8]}")
        target.mkdir()
        try:
            failure = await build(target)
            if failure is None:
                os.rename(target, final)
            return failure
        finally:
            if target.exists():
                await asyncio.to_thread(shutil.rmtree, target, True)

    def gc(self, *, max_age_s: float, min_free_mb: float) -> GcReport:
        """Remove environments unused for ``max_age_s``, then, while the disk has less than
        ``min_free_mb`` free, the least recently used ones. An environment a job holds is
        never removed."""
        removed: list[Path] = []
        in_use = 0
        now = time.time()
        entries: list[tuple[float, Path]] = []
        if not self.root.is_dir():
            return GcReport([], 0, _free_mb(self.root))
        for runtime_dir in self.root.iterdir():
            if not runtime_dir.is_dir():
                continue
            for entry in runtime_dir.iterdir():
                if entry.name.endswith(".lock") or not entry.is_dir():
                    continue
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                if entry.name.startswith(".tmp-"):
                    if now - mtime > _STALE_BUILD_S:
                        shutil.rmtree(entry, ignore_errors=True)
                        removed.append(entry)
                    continue
                entries.append((mtime, entry))
        entries.sort()
        survivors: list[tuple[float, Path]] = []
        for mtime, entry in entries:
            if now - mtime > max_age_s:
                if self._remove(entry):
                    removed.append(entry)
                else:
                    in_use += 1
            else:
                survivors.append((mtime, entry))
        for _, entry in survivors:
            if _free_mb(self.root) >= min_free_mb:
                break
            if self._remove(entry):
                removed.append(entry)
            else:
                in_use += 1
        for entry in removed:
            log.info("removed the dependency environment %s", entry)
        return GcReport(removed, in_use, _free_mb(self.root))

    def _remove(self, entry: Path) -> bool:
        fd = os.open(entry.with_name(entry.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            # Renamed first: the key reads as absent at once, even if deleting takes long.
            trash = entry.with_name(f".tmp-{entry.name}-gc{uuid.uuid4().hex[:8]}")
            try:
                os.rename(entry, trash)
            except FileNotFoundError:
                return False
            shutil.rmtree(trash, ignore_errors=True)
            return True
        finally:
            os.close(fd)


async def _flock(fd: int, operation: int) -> None:
    # Polled rather than blocking in a thread: a canceled job stops waiting at once, and no
    # thread is left blocked on a descriptor that gets closed.
    while True:
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(_POLL_S)


def _free_mb(path: Path) -> float:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / (1024 * 1024)
