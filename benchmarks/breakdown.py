"""Where each millisecond of one job goes: the phases of a no-op Python job through
``run_wait_result``, one job at a time.

    uv run python benchmarks/breakdown.py [--jobs N] [--sandbox none|bwrap] [--markdown]

Starts the platform as ``benchmarks/run.py`` does (``gristmill up`` on a private data
directory and port), with ``GRISTMILL_TRACE_JOBS=1``: the server and its workers record
``perf_counter_ns`` marks per job and phase (``gristmill.queue.trace``), read back at the end
through the debug route ``GET /api/w/main/jobs/trace``. The client adds its own two marks
(request sent, answer read) on the same clock (``CLOCK_MONOTONIC``, shared by the processes
of a machine). Each row is the gap between two consecutive marks, named by the phase that
ends it: p50 and p95 over the jobs, and its share (its mean over the mean total).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Sequence

from gristmill.queue.trace import PHASES
from run import NOOP, Platform, machine, percentile

#: What each gap (named by the mark that ends it) covers, for the table.
WHAT = {
    "received": "HTTP: the request sent, parsed, routed (client to handler)",
    "validated": "authentication, run options, body, script (cache), argument checks",
    "inserted": "the job's rows written (insert statement)",
    "handed": "handed to a reserved idle worker in memory",
    "claimed": "the worker task wakes up with the job",
    "prepared": "job dir, args file, environment, token, dependency lookup",
    "prepare": "the runtime's recipe (command, files)",
    "run": "the process: start, interpreter, script, exit (sandbox included)",
    "collected": "the result file read",
    "recorded": "result and log end written (completion statement)",
    "notified": "the waiter's future resolved",
    "woken": "the waiting handler resumes",
    "responded": "the response built and sent",
    "answered": "HTTP: the answer to the client",
}

CLIENT_SENT, CLIENT_READ = "sent", "answered"
assert set(PHASES) <= set(WHAT), "a phase of gristmill.queue.trace is not described here"


def gaps(marks: Sequence[tuple[str, int]], *, every: bool = False) -> dict[str, float]:
    """Milliseconds between consecutive marks of one job, by the phase that ends each;
    ``every``: marks of other phases too (finer marks added while looking for a cost)."""
    known = [(phase, at) for phase, at in marks if every or phase in WHAT or phase == CLIENT_SENT]
    known.sort(key=lambda mark: mark[1])
    return {phase: (at - before) / 1e6 for (_, before), (phase, at) in itertools.pairwise(known)}


def measure(
    platform: Platform, jobs: int, warmup: int, pause_s: float = 0.0, *, every: bool = False
) -> list[dict[str, float]]:
    platform.save("u/bench/noop", NOOP)
    for _ in range(warmup):
        platform.run_wait("u/bench/noop", {})
    platform.client.get("/jobs/trace").raise_for_status()  # forget the warm-up's marks
    client: dict[str, list[tuple[str, int]]] = {}
    for _ in range(jobs):
        sent = time.perf_counter_ns()
        r = platform.client.post("/jobs/run_wait_result/p/u/bench/noop", json={})
        read = time.perf_counter_ns()
        r.raise_for_status()
        client[r.headers["x-job-id"]] = [(CLIENT_SENT, sent), (CLIENT_READ, read)]
        if pause_s:
            # The caller's own work between jobs: what the worker does after the answer
            # (the job directory's removal) is then not charged to the next job.
            time.sleep(pause_s)
    r = platform.client.get("/jobs/trace")
    r.raise_for_status()
    server: dict[str, list[list[object]]] = r.json()
    rows = []
    for job_id, marks in client.items():
        traced = [(str(phase), int(str(at))) for phase, at in server.get(job_id, [])]
        rows.append(gaps(marks + traced, every=every))
    return rows


def table(rows: list[dict[str, float]], markdown: bool) -> str:
    # In the order the jobs passed them (the mean rank of each phase among a job's gaps).
    ranks: dict[str, list[int]] = {}
    for row in rows:
        for rank, phase in enumerate(row):
            ranks.setdefault(phase, []).append(rank)
    phases = sorted(ranks, key=lambda phase: statistics.mean(ranks[phase]))
    totals = [sum(row.values()) for row in rows]
    mean_total = statistics.mean(totals)
    lines = []
    header = ("phase (ends at)", "p50 ms", "p95 ms", "share", "what")
    body = []
    for phase in phases:
        values = [row[phase] for row in rows if phase in row]
        body.append(
            (
                phase,
                f"{statistics.median(values):.2f}",
                f"{percentile(values, 0.95):.2f}",
                f"{100 * statistics.mean(values) / mean_total:.1f}%",
                WHAT.get(phase, ""),
            )
        )
    body.append(
        (
            "total",
            f"{statistics.median(totals):.2f}",
            f"{percentile(totals, 0.95):.2f}",
            "100%",
            "client's wall time",
        )
    )
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|---|---:|---:|---:|---|")
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        width = max(len(row[0]) for row in (header, *body))
        lines.append(f"{header[0]:<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'share':>6}  what")
        lines += [f"{r[0]:<{width}}  {r[1]:>8}  {r[2]:>8}  {r[3]:>6}  {r[4]}" for r in body]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200, help="no-op jobs measured")
    parser.add_argument("--warmup", type=int, default=20, help="no-op jobs run first, not measured")
    parser.add_argument("--workers", type=int, default=2, help="NUM_WORKERS of the platform")
    parser.add_argument(
        "--sandbox", choices=("none", "bwrap"), default=None, help="default: the platform's"
    )
    parser.add_argument(
        "--pause-ms", type=float, default=0.0, help="client pause between jobs (default none)"
    )
    parser.add_argument(
        "--every-mark", action="store_true", help="also marks of phases not in the list"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    options = parser.parse_args()
    os.environ["GRISTMILL_TRACE_JOBS"] = "1"
    platform = Platform(options.workers, sandbox=options.sandbox)
    try:
        rows = measure(
            platform,
            options.jobs,
            options.warmup,
            options.pause_ms / 1000,
            every=options.every_mark,
        )
    finally:
        platform.stop()
    print(f"machine: {machine()}; sandbox: {options.sandbox or 'default'}; n={len(rows)}")
    print(table(rows, options.markdown))


if __name__ == "__main__":
    main()
