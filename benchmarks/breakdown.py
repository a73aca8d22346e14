"""Where each millisecond of one job goes: the phases of a no-op Python job through
``run_wait_result``, one job at a time.

    uv run python benchmarks/breakdown.py [--jobs N] [--sandbox none|bwrap] [--markdown]

Starts the platform as ``benchmarks/run.py`` does (``gristmill up`` on a private data
directory and port), with ``GRISTMILL_TRACE_JOBS=1``: the server and its workers record
``perf_counter_ns`` marks per job and phase (``gristmill.queue.trace``), read back at the end
through the debug route ``GET /api/w/main/jobs/trace``. The client adds its own two marks
(request sent, answer read) on the same clock (``CLOCK_MONOTONIC``, shared by the processes
of a machine). Each row is the gap between two consecutive marks, named by the phase that
ends it: p50 and p95 over the jobs (a job may skip a phase), and its share of the summed
wall times.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from ab import SCRIPTS as AB_SCRIPTS
from ab import Side, interpreter
from gristmill.queue.trace import PHASES
from run import NOOP, ROOT, Platform, machine, percentile

#: What each gap (named by the mark that ends it) covers, for the table.
WHAT = {
    "received": "HTTP: the request sent, parsed, routed (client to handler)",
    "validated": "authentication, run options, body, script (cache), argument checks",
    "inserted": "the job's rows written (insert statement)",
    "handed": "handed to a reserved idle worker in memory",
    "claimed": "the worker task wakes up with the job",
    "prepared": "job dir, args file, environment, token, dependency lookup",
    "prepare": "the runtime's recipe (command, files)",
    "started": "the process (or a warm child) started, sandbox included",
    "run": "the process: (start,) interpreter, script, exit (sandbox included)",
    "collected": "the result file read",
    "recorded": "result and log end written (completion statement)",
    "notified": "the waiter's future resolved (by the worker, or by the commit's notification)",
    "woken": "the waiting handler resumes",
    "responded": "the response built and sent",
    "answered": "HTTP: the answer to the client",
}

CLIENT_SENT, CLIENT_READ = "sent", "answered"
#: A no-op that prints a line: its log is stored with its result (--output).
PRINTS = "def main():\n    print('hello')\n    return None\n"
_WORKER_SIDE = frozenset({"recorded", "notified"})
assert set(PHASES) <= set(WHAT), "a phase of gristmill.queue.trace is not described here"


def gaps(marks: Sequence[tuple[str, int]], *, every: bool = False) -> dict[str, float]:
    """Milliseconds between consecutive marks of one job, by the phase that ends each;
    ``every``: marks of other phases too (finer marks added while looking for a cost)."""
    known = [(phase, at) for phase, at in marks if every or phase in WHAT or phase == CLIENT_SENT]
    known.sort(key=lambda mark: mark[1])
    # The waiter is often woken by the commit's notification before the worker has its
    # statement's answer: the worker's later marks are then off the answer's path.
    woken = next((at for phase, at in known if phase == "woken"), None)
    if woken is not None:
        known = [(p, at) for p, at in known if not (p in _WORKER_SIDE and at > woken)]
    # "responded" runs after the response is sent: the client may have read it already.
    read = next((at for phase, at in known if phase == CLIENT_READ), None)
    if read is not None:
        known = [(p, at) for p, at in known if at <= read]
    return {phase: (at - before) / 1e6 for (_, before), (phase, at) in itertools.pairwise(known)}


class Traced:
    """A platform's client and a no-op Python script saved on it; the marks of its jobs."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.client = client
        self.path = path
        self.marks: dict[str, list[tuple[str, int]]] = {}

    def run(self, jobs: int, pause_s: float = 0.0, *, keep: bool = True) -> None:
        """``jobs`` no-op jobs, back to back (or ``pause_s`` apart), the client's marks kept."""
        for _ in range(jobs):
            sent = time.perf_counter_ns()
            r = self.client.post(f"/jobs/run_wait_result/p/{self.path}", json={})
            read = time.perf_counter_ns()
            r.raise_for_status()
            if keep:
                self.marks[r.headers["x-job-id"]] = [(CLIENT_SENT, sent), (CLIENT_READ, read)]
            if pause_s:
                # The caller's own work between jobs: what the worker does after the answer
                # (the job directory's removal) is then not charged to the next job.
                time.sleep(pause_s)

    def rows(self, *, every: bool = False) -> list[dict[str, float]]:
        """Each kept job's gaps, its server marks read (and forgotten there)."""
        r = self.client.get("/jobs/trace")
        r.raise_for_status()
        server: dict[str, list[list[object]]] = r.json()
        rows = []
        for job_id, marks in self.marks.items():
            traced = [(str(phase), int(str(at))) for phase, at in server.get(job_id, [])]
            rows.append(gaps(marks + traced, every=every))
        self.marks.clear()
        return rows


def phase_order(rows: list[dict[str, float]]) -> list[str]:
    """The phases in the order the jobs passed them (the mean rank of each among a job's
    gaps)."""
    ranks: dict[str, list[int]] = {}
    for row in rows:
        for rank, phase in enumerate(row):
            ranks.setdefault(phase, []).append(rank)
    return sorted(ranks, key=lambda phase: statistics.mean(ranks[phase]))


def compare(before: list[dict[str, float]], after: list[dict[str, float]], markdown: bool) -> str:
    """p50 and p95 of each phase, before and after."""
    header = (
        "phase (ends at)",
        "before p50",
        "after p50",
        "after - before",
        "before p95",
        "after p95",
    )
    body = []
    for phase in [*phase_order(before + after), "total"]:
        a, b = (
            [sum(r.values()) if phase == "total" else r[phase] for r in side if phase in r or phase == "total"]
            for side in (before, after)
        )  # fmt: skip
        if a and b:
            a50, b50 = statistics.median(a), statistics.median(b)
            body.append(
                (
                    phase,
                    f"{a50:.2f}",
                    f"{b50:.2f}",
                    f"{b50 - a50:+.2f}",
                    f"{percentile(a, 0.95):.2f}",
                    f"{percentile(b, 0.95):.2f}",
                )
            )
    return render(header, body, markdown)


def render(header: Sequence[str], body: list[Sequence[str]], markdown: bool) -> str:
    """A table: Markdown, or aligned text (names and descriptions left, figures right)."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        if header[-1] == "what":
            lines[1] = lines[1][: -len("---:|")] + "---|"
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    left = {0, len(header) - 1} if header[-1] == "what" else {0}
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in (header, *body)
    )


def table(rows: list[dict[str, float]], markdown: bool) -> str:
    totals = [sum(row.values()) for row in rows]
    grand_total = sum(totals)
    header = ("phase (ends at)", "p50 ms", "p95 ms", "share", "what")
    body = []
    for phase in phase_order(rows):
        values = [row[phase] for row in rows if phase in row]
        body.append(
            (
                phase,
                f"{statistics.median(values):.2f}",
                f"{percentile(values, 0.95):.2f}",
                f"{100 * sum(values) / grand_total:.1f}%",
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
    return render(header, body, markdown)


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
    parser.add_argument(
        "--output", action="store_true", help="the job prints a line (its log is stored)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout (with its .venv and this tracer): run both side by side, "
        "batches of jobs alternating, and print each phase before and after",
    )
    parser.add_argument("--batch", type=int, default=10, help="jobs per batch with --before")
    options = parser.parse_args()
    os.environ["GRISTMILL_TRACE_JOBS"] = "1"
    pause_s = options.pause_ms / 1000
    every = options.every_mark
    if options.before is not None:
        sandbox = options.sandbox or "bwrap"
        sides: list[Side] = []
        try:
            # Started one after the other (each start is heavy); the order of the batches
            # alternates so that the machine's drift falls on both alike.
            sides.append(Side(options.before.resolve(), interpreter(options.before, None), sandbox))
            sides.append(Side(ROOT, sys.executable, sandbox))
            path = AB_SCRIPTS["python3"][0]
            if options.output:
                path = "u/ab/prints"
                for side in sides:
                    r = side.client.post(
                        "/scripts/create",
                        json={"path": path, "language": "python3", "content": PRINTS},
                    )
                    r.raise_for_status()
            traced = [Traced(side.client, path) for side in sides]
            for side in traced:
                side.run(options.warmup, keep=False)
                side.rows()
            rows: list[list[dict[str, float]]] = [[], []]
            for i in range(max(1, options.jobs // options.batch)):
                for k in (0, 1) if i % 2 else (1, 0):
                    traced[k].run(options.batch, pause_s)
                    rows[k] += traced[k].rows(every=every)
        finally:
            for side in sides:
                side.stop()
        print(
            f"machine: {machine()}; sandbox: {sandbox}; n={len(rows[1])} per side, "
            f"batches of {options.batch}; before: {options.before}"
        )
        print(compare(rows[0], rows[1], options.markdown))
        return
    platform = Platform(options.workers, sandbox=options.sandbox)
    try:
        script = PRINTS if options.output else NOOP
        platform.save("u/bench/noop", script)
        traced_one = Traced(platform.client, "u/bench/noop")
        traced_one.run(options.warmup, keep=False)
        traced_one.rows()  # forget the warm-up's marks
        traced_one.run(options.jobs, pause_s)
        rows_one = traced_one.rows(every=every)
    finally:
        platform.stop()
    print(f"machine: {machine()}; sandbox: {options.sandbox or 'default'}; n={len(rows_one)}")
    print(table(rows_one, options.markdown))


if __name__ == "__main__":
    main()
