"""Windmill's two published flow workloads, as real flows, beside the same work as jobs.

Run through ``benchmarks/run.py`` (or alone: ``benchmarks/run.py --flows-only``). The
workloads: 40 sequential ``rawscript`` Python steps of ``fibo(10)`` and 10 of ``fibo(33)``,
each step passing an index on to the next (``previous_result``), sent through
``jobs/run_wait_result/preview_flow``. Beside each, the same work as separate jobs: the same
script saved and run ``count`` times through ``jobs/run_wait_result/p/...``, each waiting for
the previous one's result. Flow runs and job runs alternate (paired), ``reps`` of each, so
that this shared machine's drift weighs on both sides alike; the figures are the medians.

The transition of a step is the end of one step's job to the start of the next, from the
jobs' own timestamps (``completed_at`` and ``started_at`` of ``jobs_u/get``, the database's
clock): for a flow, the completion of a step, the engine's advance in the same transaction,
the commit and a worker claiming the next step; for separate jobs, the completion, the
answer to the waiting HTTP request, the client's next request and its insert and claim.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

Row = tuple[str, str, str]

# The index comes back one higher: the flow's result is the number of steps that ran, in order.
STEP = """\
def fibo(n: int) -> int:
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


def main(n: int, i: int = 0) -> int:
    fibo(n)
    return i + 1
"""
STEP_PATH = "u/bench/fibo_step"


class BenchPlatform(Protocol):
    client: httpx.Client

    def save(self, path: str, content: str, language: str = ...) -> None: ...


class FlowBenchFailed(SystemExit):
    """A benchmark flow or job that did not succeed."""


def flow_value(count: int, n: int) -> dict[str, Any]:
    """``count`` rawscript steps of ``fibo(n)``, each given the previous step's index."""
    modules = []
    for k in range(count):
        index = (
            {"type": "static", "value": 0}
            if k == 0
            else {"type": "javascript", "expr": "previous_result"}
        )
        modules.append(
            {
                "id": f"s{k}",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": STEP,
                    "input_transforms": {"n": {"type": "static", "value": n}, "i": index},
                },
            }
        )
    return {"modules": modules}


@dataclass(frozen=True)
class Run:
    total_s: float
    #: The client's clock (the same host's as the database's) when it sent the first request
    #: and received the last answer.
    sent: dt.datetime
    answered: dt.datetime
    #: (started_at, completed_at) of each step's job, in order.
    steps: list[tuple[dt.datetime, dt.datetime]]

    @property
    def transitions_ms(self) -> list[float]:
        return [
            (nxt[0] - prev[1]).total_seconds() * 1000
            for prev, nxt in zip(self.steps, self.steps[1:], strict=False)
        ]

    @property
    def head_ms(self) -> float:
        """Request sent to the first step's start: submitting (checks, inserts) and a claim."""
        return (self.steps[0][0] - self.sent).total_seconds() * 1000

    @property
    def tail_ms(self) -> float:
        """The last step's end to the answer: finishing the flow, waking the request."""
        return (self.answered - self.steps[-1][1]).total_seconds() * 1000

    @property
    def step_ms(self) -> list[float]:
        return [(end - start).total_seconds() * 1000 for start, end in self.steps]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _times(platform: BenchPlatform, job_ids: list[str]) -> list[tuple[dt.datetime, dt.datetime]]:
    found = []
    for job_id in job_ids:
        r = platform.client.get(f"/jobs_u/get/{job_id}", params={"no_logs": "true"})
        if r.status_code != 200:
            raise FlowBenchFailed(f"reading job {job_id}: {r.status_code} {r.text}")
        job = r.json()
        found.append(
            (
                dt.datetime.fromisoformat(job["started_at"]),
                dt.datetime.fromisoformat(job["completed_at"]),
            )
        )
    return sorted(found)


def run_flow(platform: BenchPlatform, count: int, n: int) -> Run:
    body = {"value": flow_value(count, n), "args": {}}
    sent = _now()
    start = time.perf_counter()
    r = platform.client.post("/jobs/run_wait_result/preview_flow", json=body)
    total = time.perf_counter() - start
    answered = _now()
    if r.status_code != 200 or r.json() != count:
        raise FlowBenchFailed(f"flow failed: {r.status_code} {r.text}")
    flow_id = r.headers["x-job-id"]
    listed = platform.client.get("/jobs/list", params={"parent_job": flow_id, "per_page": count})
    ids = [job["id"] for job in listed.json()]
    if len(ids) != count:
        raise FlowBenchFailed(f"flow {flow_id} has {len(ids)} step jobs, not {count}")
    return Run(total, sent, answered, _times(platform, ids))


def run_jobs(platform: BenchPlatform, count: int, n: int) -> Run:
    ids: list[str] = []
    index = 0
    sent = _now()
    start = time.perf_counter()
    for _ in range(count):
        r = platform.client.post(f"/jobs/run_wait_result/p/{STEP_PATH}", json={"n": n, "i": index})
        if r.status_code != 200:
            raise FlowBenchFailed(f"job failed: {r.status_code} {r.text}")
        index = r.json()
        ids.append(r.headers["x-job-id"])
    total = time.perf_counter() - start
    answered = _now()
    return Run(total, sent, answered, _times(platform, ids))


def _summary(runs: list[Run]) -> tuple[float, float, float, float]:
    """Median total (s), median transition (ms), mean transition (ms), median share (%)."""
    totals = [r.total_s for r in runs]
    transitions = [t for r in runs for t in r.transitions_ms]
    shares = [sum(r.transitions_ms) / 1000 / r.total_s * 100 for r in runs]
    return (
        statistics.median(totals),
        statistics.median(transitions),
        statistics.fmean(transitions),
        statistics.median(shares),
    )


def compare(platform: BenchPlatform, count: int, n: int, reps: int) -> tuple[list[Row], float]:
    """The rows of one workload, and the flow's median total (s) for the peers' ratios."""
    flows: list[Run] = []
    jobs: list[Run] = []
    for rep in range(reps):
        # Alternating which goes first, so that neither always follows the other.
        order = (run_flow, run_jobs) if rep % 2 == 0 else (run_jobs, run_flow)
        for run in order:
            (flows if run is run_flow else jobs).append(run(platform, count, n))
    rows: list[Row] = []
    for label, runs in ((f"flow, {count} steps", flows), (f"{count} separate jobs", jobs)):
        total, t_p50, t_mean, share = _summary(runs)
        step_ms = statistics.median([s for r in runs for s in r.step_ms])
        head = statistics.median([r.head_ms for r in runs])
        tail = statistics.median([r.tail_ms for r in runs])
        rows.append(
            (
                f"{label} fibo({n})",
                f"{total:.2f} s total",
                f"{total / count * 1000:.1f} ms per step; transition {t_p50:.1f} ms p50 "
                f"(mean {t_mean:.1f}), {share:.0f}% of the total; a step's job runs "
                f"{step_ms:.1f} ms p50; request to first step {head:.1f} ms, last step to "
                f"answer {tail:.1f} ms; median of {reps}",
            )
        )
    # The transitions are the engine's part; the totals also carry the steps' own run time,
    # whose drift on a shared machine is larger than the difference looked for.
    flow_t = statistics.median([t for r in flows for t in r.transitions_ms])
    jobs_t = statistics.median([t for r in jobs for t in r.transitions_ms])
    diffs = [(f.total_s - j.total_s) / count * 1000 for f, j in zip(flows, jobs, strict=True)]
    rows.append(
        (
            f"flow - separate jobs, fibo({n}), per step",
            f"{flow_t - jobs_t:+.1f} ms",
            f"transition p50, flow - jobs; paired totals / {count}: median "
            f"{statistics.median(diffs):+.1f} ms (min {min(diffs):+.1f}, max {max(diffs):+.1f}, "
            f"{reps} pairs); aim: under +1 ms",
        )
    )
    return rows, statistics.median(r.total_s for r in flows)


def workloads(reps: int) -> list[tuple[int, int, int]]:
    """Windmill's two workloads as (steps, n, runs): the long one is timed half as often."""
    return [(40, 10, reps), (10, 33, max(2, reps // 2))]


def measure(platform: BenchPlatform, reps: int = 5) -> list[Row]:
    return measure_with_totals(platform, reps)[0]


def measure_with_totals(
    platform: BenchPlatform, reps: int = 5
) -> tuple[list[Row], dict[tuple[int, int], float]]:
    """The rows, and the flows' median totals (s) by (steps, n), which the peers are
    compared with (``peers.py``)."""
    platform.save(STEP_PATH, STEP)
    # Warm-up: the first flow and job pay for cold caches and connections.
    run_flow(platform, 3, 1)
    run_jobs(platform, 3, 1)
    rows: list[Row] = []
    totals: dict[tuple[int, int], float] = {}
    for count, n, runs in workloads(reps):
        found, totals[(count, n)] = compare(platform, count, n, runs)
        rows += found
    return rows, totals
