"""Scripts with dependencies: the lock job, the first run (install) and the cached runs.

Run through ``benchmarks/run.py`` against a fresh platform: its caches are empty, so the
lock and the first install download from the real registries.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Protocol

SCRIPTS: dict[str, tuple[str, dict[str, Any]]] = {
    "python3": (
        "import requests\nimport yaml\n\n\n"
        "def main(name: str):\n"
        "    return yaml.safe_dump({'hello': name, 'requests': requests.__version__})\n",
        {"name": "bench"},
    ),
    "bun": (
        'import * as cowsay from "cowsay@1.5.0";\n\n'
        "export function main(text: string) {\n  return cowsay.say({ text });\n}\n",
        {"text": "bench"},
    ),
}


class Client(Protocol):
    def get(self, url: str) -> Any: ...
    def post(self, url: str, json: Any) -> Any: ...


class BenchPlatform(Protocol):
    client: Client

    def run_wait(self, path: str, args: dict[str, object]) -> object: ...


def _deployed(platform: BenchPlatform, hash_: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = platform.client.get(f"/scripts/deployment_status/h/{hash_}").json()
        if status["status"] != "locking":
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"the lock job did not end in {timeout_s} s")
        time.sleep(0.05)


def measure(platform: BenchPlatform, runtimes: list[str], runs: int) -> list[tuple[str, str, str]]:
    rows = []
    for name in runtimes:
        if name not in SCRIPTS:
            continue
        what = "requests + pyyaml" if name == "python3" else "cowsay@1.5.0"
        try:
            rows.append(_measure_one(platform, name, what, runs))
        except SystemExit as exc:
            # A failed lock or job is a row of the table, not the end of the run.
            text = " ".join(str(exc).split())[:200].replace("|", "/")
            rows.append((f"with dependencies, {name} ({what})", "failed", text))
    return rows


def _measure_one(platform: BenchPlatform, name: str, what: str, runs: int) -> tuple[str, str, str]:
    content, args = SCRIPTS[name]
    path = f"u/bench/deps_{name}"
    start = time.perf_counter()
    r = platform.client.post(
        "/scripts/create", json={"path": path, "content": content, "language": name}
    )
    if r.status_code != 201:
        raise SystemExit(f"saving {path} failed: {r.status_code} {r.text}")
    status = _deployed(platform, r.text)
    lock_ms = (time.perf_counter() - start) * 1000
    if status["status"] != "deployed":
        raise SystemExit(f"locking {path} failed: {status['lock_error_logs']}")
    start = time.perf_counter()
    platform.run_wait(path, args)
    first_ms = (time.perf_counter() - start) * 1000
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        platform.run_wait(path, args)
        times.append((time.perf_counter() - start) * 1000)
    return (
        f"with dependencies, {name} ({what})",
        f"{statistics.median(times):.1f} ms p50",
        f"lock job {lock_ms:.0f} ms (save to deployed), first run {first_ms:.0f} ms "
        f"(install), n={runs}",
    )
