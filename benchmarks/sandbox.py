"""The sandbox's per-job overhead: bwrap against none, for the same no-op jobs.

Run through ``benchmarks/run.py`` (or ``benchmarks/run.py --sandbox-only``). Two figures:

- through the platform: the same no-op Bash and Python jobs through ``run_wait_result`` on a
  platform whose jobs run in bwrap and on one whose jobs run unsandboxed, one worker each,
  each bwrap job paired with a ``none`` job run just before or after it (alternating), so
  that the machine's drift weighs on both; the p50 and p95 of the differences;
- the sandbox alone: a process started by the executor with the bwrap backend against the
  same process without it, in this small process, no platform and no database.

A runtime whose jobs cannot run under bwrap yet (it does not declare the mounts its steps
need) is reported as n/a with the job's error.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

NOOPS: dict[str, str] = {"bash": "true\n", "python3": "def main():\n    return None\n"}

Row = tuple[str, str, str]


class BenchPlatform(Protocol):
    def save(self, path: str, content: str, language: str = ...) -> None: ...
    def run_wait(self, path: str, args: dict[str, object]) -> object: ...
    def stop(self) -> None: ...


class JobFailed(SystemExit):
    """A benchmark job that did not succeed."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _timed(platform: BenchPlatform, path: str) -> float:
    start = time.perf_counter()
    platform.run_wait(path, {})
    return (time.perf_counter() - start) * 1000


def measure(make_platform: Callable[[str], BenchPlatform], runs: int) -> list[Row]:
    rows: list[Row] = []
    plain, boxed = make_platform("none"), make_platform("bwrap")
    try:
        for language, code in NOOPS.items():
            path = f"u/bench/noop_{language}"
            plain.save(path, code, language=language)
            boxed.save(path, code, language=language)
            try:
                for _ in range(5):  # warm-up: connections, caches
                    _timed(plain, path)
                    _timed(boxed, path)
            except SystemExit as exc:
                # The job's error message says what the sandbox lacked.
                text = str(exc)
                reason = text[text.find('"message": ') + 12 :] if '"message"' in text else text
                reason = reason.split("\\n")[0][:160]
                rows.append((f"sandbox overhead, {language} job", "n/a", reason))
                continue
            diffs, walls = [], []
            for i in range(runs):
                if i % 2 == 0:
                    plain_ms = _timed(plain, path)
                    box_ms = _timed(boxed, path)
                else:
                    box_ms = _timed(boxed, path)
                    plain_ms = _timed(plain, path)
                diffs.append(box_ms - plain_ms)
                walls.append(box_ms)
            rows.append(
                (
                    f"sandbox overhead, {language} job (bwrap - none)",
                    f"{statistics.median(diffs):.1f} ms p50",
                    f"p95 {_percentile(diffs, 0.95):.1f} ms; the bwrap job "
                    f"{statistics.median(walls):.1f} ms p50; paired, n={runs}, over HTTP",
                )
            )
    finally:
        plain.stop()
        boxed.stop()
    return rows + startup(runs)


def startup(runs: int) -> list[Row]:
    from gristmill.config import Settings
    from gristmill.runtimes import Recipe
    from gristmill.sandbox import RunPolicy
    from gristmill.server.platform import run_policy
    from gristmill.worker.processes import run_recipe

    data = Path(tempfile.mkdtemp(prefix="gristmill-bench-sandbox-", dir="/var/tmp"))
    data.chmod(0o755)
    try:
        boxed = run_policy(Settings(data_dir=data, sandbox="bwrap"))
        plain = RunPolicy()
        job = data / "jobs" / "bench"
        job.mkdir(parents=True)
        python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or "python3"
        programs = {
            "bash -c true": ["/bin/bash", "-c", "true"],
            f"{python} -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
        }
        rows: list[Row] = []
        for name, argv in programs.items():
            recipe = Recipe(argv, {"PATH": "/usr/bin:/bin"}, job)

            async def once(policy: RunPolicy, recipe: Recipe = recipe) -> float:
                start = time.perf_counter()
                result = await run_recipe(
                    recipe,
                    timeout_s=60,
                    on_output=lambda text: None,
                    cancel=asyncio.Event(),
                    policy=policy,
                )
                if result.returncode != 0:
                    raise JobFailed(result.output_tail.strip()[-100:])
                return (time.perf_counter() - start) * 1000

            async def pairs() -> tuple[list[float], list[float]]:
                for _ in range(5):
                    await once(plain)
                    await once(boxed)
                diffs, bare = [], []
                for _ in range(runs):
                    plain_ms = await once(plain)
                    diffs.append(await once(boxed) - plain_ms)
                    bare.append(plain_ms)
                return diffs, bare

            try:
                diffs, bare = asyncio.run(pairs())
            except JobFailed as exc:
                rows.append((f"sandbox start-up, {name}", "n/a", str(exc)))
                continue
            rows.append(
                (
                    f"sandbox start-up, {name}",
                    f"+{statistics.median(diffs):.1f} ms p50",
                    f"p95 +{_percentile(diffs, 0.95):.1f} ms over {statistics.median(bare):.1f}"
                    f" ms unsandboxed; executor only, no platform, n={runs}",
                )
            )
        return rows
    finally:
        shutil.rmtree(data, ignore_errors=True)
