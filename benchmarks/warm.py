"""Warm runners against cold starts, on issue 14's workloads, under the default sandbox.

    uv run python benchmarks/warm.py [--jobs N] [--flow-reps N] [--markdown] [--peers]
    uv run python benchmarks/warm.py --drain-only   # the throughput rows alone

Two platforms as ``benchmarks/run.py`` starts them (``gristmill up``, 2 workers, jobs in the
default sandbox, bwrap): one with ``GRISTMILL_WARM=0`` (every job starts its interpreter in a
new sandbox) and one as shipped (warm: every job runs in a child forked for it). The same
requests alternate between the two, so that the machine's drift weighs on both sides:

- a no-op Python job through ``run_wait_result`` (p50, p95);
- a script importing ``requests`` (its lock resolved and installed first);
- throughput: no-op jobs submitted at once, drained by the 2 workers, and the CPU each job
  cost while draining, by who spent it (the server, the jobs' processes, Postgres);
- Windmill's flow workloads as real flows: 40 sequential ``fibo(10)`` steps, and 10 of
  ``fibo(33)`` beside ten bare ``fibo(33)`` calls in one interpreter (no platform);
- with ``--peers``, Prefect 3 and DBOS Transact on the same flow workloads, in the same run
  (``benchmarks/peers.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import flows
import httpx
import peers
from run import FIBO, NOOP, Platform, machine, percentile

REQUESTS = "import requests\n\n\ndef main():\n    return requests.__version__\n"
BARE_FIBO33 = (
    "import time\n"
    "def fibo(n):\n"
    "    return n if n < 2 else fibo(n - 1) + fibo(n - 2)\n"
    "start = time.perf_counter()\n"
    "for _ in range(10):\n"
    "    fibo(33)\n"
    "print(time.perf_counter() - start)\n"
)
Row = tuple[str, str, str, str, str]


@contextlib.contextmanager
def platform(warm: bool, workers: int) -> Iterator[Platform]:
    before = os.environ.get("GRISTMILL_WARM")
    os.environ["GRISTMILL_WARM"] = "1" if warm else "0"
    try:
        started = Platform(workers)
    finally:
        if before is None:
            os.environ.pop("GRISTMILL_WARM", None)
        else:
            os.environ["GRISTMILL_WARM"] = before
    try:
        yield started
    finally:
        started.stop()


def timed_ms(platform: Platform, path: str) -> float:
    start = time.perf_counter()
    platform.run_wait(path, {})
    return (time.perf_counter() - start) * 1000


def save_deployed(platform: Platform, path: str, content: str, timeout_s: float = 300) -> None:
    """Save a script with dependencies and wait until its lock job has ended well."""
    r = platform.client.post(
        "/scripts/create", json={"path": path, "content": content, "language": "python3"}
    )
    if r.status_code != 201:
        raise SystemExit(f"saving {path} failed: {r.status_code} {r.text}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = platform.client.get(f"/scripts/deployment_status/h/{r.text}").json()
        if status["status"] == "deployed":
            return
        if status["status"] != "locking":
            raise SystemExit(f"locking {path} failed: {status.get('lock_error_logs')}")
        time.sleep(0.2)
    raise SystemExit(f"{path}: its lock was not ready in {timeout_s:g} s")


def alternate(cold: Platform, warm: Platform, path: str, n: int) -> tuple[list[float], list[float]]:
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(5):  # warm-up: connections, the warm parent, caches
        timed_ms(cold, path)
        timed_ms(warm, path)
    for i in range(n):
        first = i % 2 == 0
        for side in (first, not first):
            times[side].append(timed_ms(warm if side else cold, path))
    return times[False], times[True]


@dataclass
class Drain:
    """A drain's rate, and the CPU it cost per job by who spent it (ms)."""

    rate: float
    cpu_ms: dict[str, float]

    def cpu_cell(self) -> str:
        named = {who: ms for who, ms in self.cpu_ms.items() if who != "all"}
        rest = self.cpu_ms["all"] - sum(named.values())
        parts = ", ".join(f"{who} {ms:.1f}" for who, ms in named.items())
        return f"{self.cpu_ms['all']:.1f} ms ({parts}, rest {rest:.1f})"


_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _cpu_by_process(server_pid: int) -> dict[str, float]:
    """CPU time (ms) spent so far, by who: the server process itself; its jobs' processes
    (the children it reaped — cold jobs' sandboxes — plus the warm parents and every child
    they reaped); Postgres (every ``postgres`` process, with the backends its postmaster
    reaped); and the whole machine (``/proc/stat``, every core, kernel threads included: the
    "rest" is what none of those three accounts for: the kernel's own threads, the client, and
    processes that ended re-parented away from the server)."""
    spent = {"server": 0.0, "jobs": 0.0, "postgres": 0.0}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue  # ended meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        utime, stime, cutime, cstime = (int(v) for v in stat[stat.rindex(")") + 2 :].split()[11:15])
        if int(entry) == server_pid:
            spent["server"] += (utime + stime) * _TICK_MS
            spent["jobs"] += (cutime + cstime) * _TICK_MS
        elif b"forkserver.py" in cmdline:
            spent["jobs"] += (utime + stime + cutime + cstime) * _TICK_MS
        elif comm == "postgres":
            spent["postgres"] += (utime + stime + cutime + cstime) * _TICK_MS
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    spent["all"] = (sum(fields) - fields[3] - fields[4]) * _TICK_MS  # minus idle and iowait
    return spent


def throughput(platform: Platform, count: int) -> Drain:
    """Jobs per second drained: ``count`` no-op jobs queued for one moment in the future (so
    that submitting them is not what is measured), from that moment to the last one's end
    (the database's ``completed_at``, on this machine's clock); and the CPU the drain cost
    per job, by who spent it (read from ``/proc`` at that moment and once every job has
    ended: the client's few polls are in "all", as is every other process of the machine)."""
    client = httpx.Client(
        base_url=str(platform.client.base_url), headers=platform.client.headers, timeout=120
    )
    with client:
        due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2 + count * 0.004)
        ids = [
            client.post(
                "/jobs/run/p/u/bench/noop", params={"scheduled_for": due.isoformat()}, json={}
            ).text
            for _ in range(count)
        ]
        if dt.datetime.now(dt.UTC) >= due:
            raise SystemExit("submitting took longer than planned: raise the margin")
        time.sleep(max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds()))
        before = _cpu_by_process(platform.process.pid)
        ends: list[dt.datetime] = []
        pending = list(ids)
        while pending:
            # Seldom: the end is the database's completed_at, so polling faster would only
            # add the polls' own CPU to the drain's.
            time.sleep(0.25)
            while pending:
                r = client.get(f"/jobs_u/get/{pending[0]}", params={"no_logs": "true"}).json()
                if not r.get("completed_at"):
                    break
                ends.append(dt.datetime.fromisoformat(r["completed_at"]))
                pending.pop(0)
        after = _cpu_by_process(platform.process.pid)
        return Drain(
            rate=count / (max(ends) - due).total_seconds(),
            cpu_ms={who: (after[who] - before[who]) / count for who in after},
        )


def flow_totals(
    cold: Platform, warm: Platform, count: int, n: int, reps: int
) -> tuple[float, float]:
    totals: dict[bool, list[float]] = {False: [], True: []}
    flows.run_flow(cold, count, n)  # warm-up
    flows.run_flow(warm, count, n)
    for i in range(reps):
        first = i % 2 == 0
        for side in (first, not first):
            totals[side].append(flows.run_flow(warm if side else cold, count, n).total_s)
    return statistics.median(totals[False]), statistics.median(totals[True])


def bare_fibo33() -> float:
    from gristmill_python.runtime import PythonRuntime

    interpreter = PythonRuntime().interpreter
    runs = [
        float(
            subprocess.run(
                [interpreter, "-I", "-S", "-c", BARE_FIBO33],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(2)
    ]
    return min(runs)


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms (p95 {percentile(values, 0.95):.1f})"


def drain_rows(cold: Platform, warm: Platform, count: int, workers: int) -> list[Row]:
    rows: list[Row] = []
    c_drain, w_drain = throughput(cold, count), throughput(warm, count)
    rows.append(
        (
            f"throughput, {count} no-op jobs queued at once, {workers} workers",
            f"{c_drain.rate:.0f} jobs/s",
            f"{w_drain.rate:.0f} jobs/s",
            f"{w_drain.rate / c_drain.rate:.1f}x",
            ">= 1000 jobs/s",
        )
    )
    rows.append(
        (
            "CPU per drained job: all (server, jobs, Postgres, rest)",
            c_drain.cpu_cell(),
            w_drain.cpu_cell(),
            f"{c_drain.cpu_ms['all'] / w_drain.cpu_ms['all']:.1f}x",
            "<= 2 ms for 1000 jobs/s on 2 cores",
        )
    )
    return rows


def measure(
    jobs: int, flow_reps: int, workers: int, with_peers: bool, drain_only: bool = False
) -> list[Row]:
    rows: list[Row] = []
    with platform(False, workers) as cold, platform(True, workers) as warm:
        for side in (cold, warm):
            side.save("u/bench/noop", NOOP)
            if drain_only:
                for _ in range(5):  # the warm parent, connections
                    side.run_wait("u/bench/noop", {})
                continue
            side.save("u/bench/fibo", FIBO)
            save_deployed(side, "u/bench/requests", REQUESTS)
        if drain_only:
            return drain_rows(cold, warm, max(1000, jobs * 5), workers)
        c, w = alternate(cold, warm, "u/bench/noop", jobs)
        rows.append(
            (
                "no-op Python job, run_wait_result",
                ms(c),
                ms(w),
                f"{statistics.median(c) / statistics.median(w):.1f}x",
                "warm <= 3 ms p50",
            )
        )
        c, w = alternate(cold, warm, "u/bench/requests", max(20, jobs // 2))
        rows.append(
            (
                "script importing requests",
                ms(c),
                ms(w),
                f"{statistics.median(c) / statistics.median(w):.1f}x",
                "warm <= 10 ms p50",
            )
        )
        rows += drain_rows(cold, warm, max(1000, jobs * 5), workers)
        c40, w40 = flow_totals(cold, warm, 40, 10, flow_reps)
        rows.append(
            (
                "flow, 40 steps fibo(10)",
                f"{c40:.3f} s",
                f"{w40:.3f} s ({w40 / 40 * 1000:.1f} ms/step)",
                f"{c40 / w40:.1f}x",
                "<= DBOS in the same run",
            )
        )
        c10, w10 = flow_totals(cold, warm, 10, 33, max(1, flow_reps // 2))
        bare = bare_fibo33()
        rows.append(
            (
                "flow, 10 steps fibo(33)",
                f"{c10:.2f} s",
                f"{w10:.2f} s",
                f"warm {100 * (w10 / bare - 1):+.1f}% over bare",
                f"within 2% of 10 bare calls ({bare:.2f} s)",
            )
        )
    if with_peers:
        # After the platforms have stopped: the peers do not share the cores with them.
        rows += peer_rows(flow_reps, w40, w10)
    return rows


def peer_rows(flow_reps: int, warm40: float, warm10: float) -> list[Row]:
    """The peers on the same flow workloads (benchmarks/peers.py), with the ratios to
    Gristmill's warm flows ("Gristmill flow" in the ratio rows)."""
    rows = peers.measure(flows.workloads(flow_reps), {(40, 10): warm40, (10, 33): warm10})
    return [(name, "", value, detail, "") for name, value, detail in rows]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100, help="no-op jobs per side")
    parser.add_argument(
        "--flow-reps", type=int, default=5, help="runs of the 40-step flow per side"
    )
    parser.add_argument("--workers", type=int, default=2, help="NUM_WORKERS of each platform")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--peers", action="store_true", help="also run Prefect 3 and DBOS")
    parser.add_argument(
        "--drain-only", action="store_true", help="only the throughput and its CPU per job"
    )
    options = parser.parse_args()
    rows = measure(
        options.jobs, options.flow_reps, options.workers, options.peers, options.drain_only
    )
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    header = ("measure", "cold", "warm", "ratio", "aim")
    if options.markdown:
        print("| " + " | ".join(header) + " |\n|---|---|---|---|---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
        for row in [header, *rows]:
            print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
