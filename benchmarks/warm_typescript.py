"""Per-job time of a no-op Bun (and Deno) job, cold against warm (issue 14).

    uv run python benchmarks/warm_typescript.py [--jobs N] [--runtimes bun,deno,python3]

Two platforms as ``benchmarks/run.py`` starts them (``gristmill up``, one worker, jobs in the
default sandbox), one with ``GRISTMILL_WARM=0`` (each job starts its runtime) and one with
warm mode (the default: each job runs in a runtime process started before it came). The same
saved no-op script runs through ``run_wait_result`` on each, alternating cold and warm
requests so that the machine's drift weighs on both; the table gives the client's wall time
per job (p50, p95) and the runtime's own start-up on this machine (``bun -e 0``), for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time

from run import Platform, percentile

NOOP = "export function main() {\n  return null;\n}\n"
#: For scale: the Python runtime's no-op, warm (a fork) and cold, on the same platforms.
NOOPS = {"bun": NOOP, "deno": NOOP, "python3": "def main():\n    return None\n"}


def timed_ms(platform: Platform, path: str) -> float:
    start = time.perf_counter()
    platform.run_wait(path, {})
    return (time.perf_counter() - start) * 1000


def start_up_ms(argv: list[str], runs: int = 20) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60, help="jobs per runtime and mode")
    parser.add_argument("--runtimes", default="bun,deno")
    options = parser.parse_args()
    runtimes = options.runtimes.split(",")

    os.environ["GRISTMILL_WARM"] = "0"
    cold = Platform(1)
    os.environ.pop("GRISTMILL_WARM")
    warm = Platform(1)
    rows: list[tuple[str, str, str]] = []
    try:
        for runtime in runtimes:
            path = f"u/bench/noop_{runtime}"
            for platform in (cold, warm):
                platform.save(path, NOOPS[runtime], language=runtime)
                for _ in range(3):  # first runs: caches, the warm parent's start
                    platform.run_wait(path, {})
            times: dict[str, list[float]] = {"cold": [], "warm": []}
            for i in range(options.jobs):
                order = [("cold", cold), ("warm", warm)]
                for mode, platform in order if i % 2 else reversed(order):
                    times[mode].append(timed_ms(platform, path))
            for mode in ("cold", "warm"):
                values = times[mode]
                rows.append(
                    (
                        f"no-op {runtime} job, {mode}",
                        f"{statistics.median(values):.1f} ms p50",
                        f"p95 {percentile(values, 0.95):.1f} ms, n={len(values)}",
                    )
                )
    finally:
        cold.stop()
        warm.stop()
    from gristmill_typescript.bun import BunRuntime
    from gristmill_typescript.deno import DenoRuntime

    for runtime in runtimes:
        if runtime == "python3":
            continue
        binary = BunRuntime().bun if runtime == "bun" else DenoRuntime().deno
        argv = [binary, "-e", "0"] if runtime == "bun" else [binary, "eval", "0"]
        rows.append(
            (f"{runtime} start-up alone", f"{start_up_ms(argv):.1f} ms p50", " ".join(argv[1:]))
        )
    width = max(len(row[0]) for row in rows)
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>14}  {note}")


if __name__ == "__main__":
    main()
