"""History at scale (issue 15, point 6): claiming, ``jobs/list`` and ``get_result`` with a
small history, then with a large one, side by side.

    uv run python benchmarks/history.py [--rows 1000000] [--small 1000] [--reps 20]
                                        [--markdown] [--explain]

One platform (``gristmill up`` on a private data directory, as ``run.py`` starts it). Its
history is filled straight in SQL (``history_fill.sql``: completed jobs spread over 90 days,
20 users, 200 paths, successes and failures, a result and a ~300-byte log each) to
``--small`` rows, everything is measured, then it is filled on to ``--rows`` and measured
again. Measures:

- the claim statement itself (``claim_job`` of ``sql/queries/queue.sql``, on a job of a tag
  no worker serves, in a transaction rolled back each time): what a worker pays per job;
- a no-op job through ``run_wait_result`` (wall time; a standalone server hands a new job
  straight to its idle worker, so this is the whole path, not the claim);
- ``GET jobs/list`` with the filters the UI sends (Runs page: none, a later page, path
  exact/prefix, success, created_by, running, the last day; the flow page: a flow's runs;
  a flow run's steps: ``parent_job``; a schedule's runs), and ``jobs/completed/list``;
- ``GET jobs_u/completed/get_result/{id}`` and ``GET jobs_u/get/{id}`` (with its logs) of
  random completed jobs.

Each figure is the median of ``--reps`` requests (p95 beside it). ``--explain`` prints
``EXPLAIN (ANALYZE, BUFFERS)`` of the list statement for each filter at the large size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from gristmill.db.embedded import EmbeddedPostgres
from gristmill.db.queries import Q
from run import Platform, machine, percentile

HERE = Path(__file__).resolve().parent
FILL = (HERE / "history_fill.sql").read_text()
PROBE = (HERE / "history_probe.sql").read_text()
BATCH = 100_000
NOOP = "def main():\n    return None\n"

#: name -> query parameters of jobs/list (the UI's filters; see frontend/src/pages/Runs.svelte).
LISTS: dict[str, dict[str, Any]] = {
    "no filter (Runs page)": {"per_page": 50},
    "page 20": {"per_page": 50, "page": 20},
    "path exact": {"per_page": 50, "script_path_exact": "u/user3/script_2"},
    "path prefix (folder)": {"per_page": 50, "script_path_start": "f/team1/"},
    "success=false": {"per_page": 50, "success": "false"},
    "created_by": {"per_page": 50, "created_by": "user11"},
    "running=true": {"per_page": 50, "running": "true"},
    "last day (created_after)": {"per_page": 50},  # created_after filled in at run time
    "a flow's runs (flow page)": {
        "per_page": 10,
        "script_path_exact": "u/user3/script_2",
        "job_kinds": "flow",
    },
    "job_kinds=flow": {"per_page": 50, "job_kinds": "flow"},
    "a schedule's runs": {"per_page": 50, "schedule_path": "u/user3/script_2_every_minute"},
    "a flow run's steps (parent_job)": {"per_page": 50},  # parent_job filled in at run time
}


def timed(call: Callable[[], object], reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> str:
    return f"{statistics.median(times):.1f} ms (p95 {percentile(times, 0.95):.1f})"


class History:
    """The platform's database, reached directly: filling and probing the history."""

    def __init__(self, platform: Platform) -> None:
        self.conn = psycopg.connect(EmbeddedPostgres(platform.data_dir).conninfo, autocommit=True)
        self.rows = 0

    def fill_to(self, total: int, target: int) -> float:
        """Insert completed jobs until the history holds ``total`` rows (of ``target``, the
        size the spread in time is computed for); the seconds it took."""
        start = time.perf_counter()
        while self.rows < total:
            count = min(BATCH, total - self.rows)
            self.conn.execute(
                FILL,  # type: ignore[arg-type]
                {"first": self.rows + 1, "count": count, "total": target},
            )
            self.rows += count
            print(f"  history: {self.rows} rows", flush=True)
        self.conn.execute("VACUUM ANALYZE job, job_completed, job_log")
        return time.perf_counter() - start

    def sample(self, n: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT id::text FROM job_completed TABLESAMPLE SYSTEM (10) LIMIT %s", (n,)
        ).fetchall()
        if len(rows) < n:
            rows = self.conn.execute(
                "SELECT id::text FROM job_completed ORDER BY random() LIMIT %s", (n,)
            ).fetchall()
        return [r[0] for r in rows]

    def claim_ms(self, reps: int) -> list[float]:
        """The claim statement's time on a queued job, each claim rolled back."""
        tag = f"bench-claim-{uuid.uuid4().hex[:8]}"
        self.conn.execute(PROBE, {"id": uuid.uuid4(), "tag": tag})  # type: ignore[arg-type]
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            with self.conn.transaction(force_rollback=True):
                row = self.conn.execute(
                    Q["claim_job"], {"tags": [tag], "worker": "bench-claimer"}
                ).fetchone()
            times.append((time.perf_counter() - start) * 1000)
            assert row is not None and row[0] is not None, "the probe job was not claimed"
        return times

    def a_flow_with_steps(self) -> str:
        """A flow run with a few steps (``parent_job``), inserted for the steps' list."""
        row = self.conn.execute(
            "SELECT id::text FROM job WHERE kind = 'flow' ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        self.conn.execute(
            "UPDATE job SET parent_job = %s::uuid WHERE id IN ("
            " SELECT id FROM job WHERE kind = 'script' AND parent_job IS NULL"
            " ORDER BY created_at DESC LIMIT 5)",
            (row[0],),
        )
        return row[0]

    def close(self) -> None:
        self.conn.close()


def list_params(name: str, flow_id: str) -> dict[str, Any]:
    params = dict(LISTS[name])
    if name.startswith("last day"):
        since = time.time() - 86400
        params["created_after"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    if name.startswith("a flow run's steps"):
        params["parent_job"] = flow_id
    return params


def measure(platform: Platform, history: History, reps: int) -> dict[str, str]:
    out: dict[str, str] = {}
    client = platform.client
    out["claim statement (1 queued job)"] = summary(history.claim_ms(reps * 2))
    walls = []
    for _ in range(reps):
        start = time.perf_counter()
        r = client.post("/jobs/run_wait_result/p/u/bench/noop", json={})
        walls.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    out["no-op job, run_wait_result"] = summary(walls)
    flow_id = history.a_flow_with_steps()
    for name in LISTS:
        params = list_params(name, flow_id)

        def call(params: dict[str, Any] = params) -> None:
            r = client.get("/jobs/list", params=params)
            r.raise_for_status()

        out[f"jobs/list, {name}"] = summary(timed(call, reps))

    def completed() -> None:
        client.get("/jobs/completed/list", params={"per_page": 50}).raise_for_status()

    out["jobs/completed/list, no filter"] = summary(timed(completed, reps))
    sample = history.sample(reps)
    results, gets = [], []
    for job_id in sample:
        results += timed(
            lambda job_id=job_id: client.get(
                f"/jobs_u/completed/get_result/{job_id}"
            ).raise_for_status(),
            1,
        )
        gets += timed(
            lambda job_id=job_id: client.get(f"/jobs_u/get/{job_id}").raise_for_status(), 1
        )
    out["jobs_u/completed/get_result/{id}"] = summary(results)
    out["jobs_u/get/{id} (with logs)"] = summary(gets)
    return out


def explain(history: History, flow_id: str) -> None:
    """The plan of the list statement for each filter (as an admin lists)."""
    from gristmill.queue.rows import JobQuery, list_params_for

    for name in LISTS:
        params = list_params(name, flow_id)
        query = JobQuery(
            per_page=int(params.get("per_page", 50)),
            page=int(params.get("page", 1)),
            path_exact=params.get("script_path_exact"),
            path_start=params.get("script_path_start"),
            created_by=params.get("created_by"),
            success={"true": True, "false": False}.get(params.get("success", "")),
            running={"true": True, "false": False}.get(params.get("running", "")),
            job_kinds=params["job_kinds"].split(",") if "job_kinds" in params else None,
            trigger_kind="schedule" if "schedule_path" in params else None,
            trigger=params.get("schedule_path"),
            parent_job=uuid.UUID(params["parent_job"]) if "parent_job" in params else None,
            created_after=dt.datetime.fromisoformat(params["created_after"])
            if "created_after" in params
            else None,
        )
        bound = list_params_for("main", query, None)
        cur = psycopg.ClientCursor(history.conn)
        text = cur.mogrify(Q["list_jobs"], bound)
        plan = history.conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + text  # type: ignore[operator]
        ).fetchall()
        print(f"\n### {name}\n")
        print("\n".join(r[0] for r in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="the large history's size")
    parser.add_argument("--small", type=int, default=1000, help="the small history's size")
    parser.add_argument("--reps", type=int, default=20, help="requests per measure")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the list plans at the end")
    args = parser.parse_args()
    platform = Platform(workers=1)
    history = History(platform)
    try:
        platform.save("u/bench/noop", NOOP)
        for _ in range(5):  # warm-up: connections, caches, the first interpreter
            platform.run_wait("u/bench/noop", {})
        print(f"filling the history to {args.small} rows", flush=True)
        history.fill_to(args.small, args.rows)
        small = measure(platform, history, args.reps)
        print(f"filling the history to {args.rows} rows", flush=True)
        fill_s = history.fill_to(args.rows, args.rows)
        large = measure(platform, history, args.reps)
        if args.explain:
            explain(history, history.a_flow_with_steps())
    finally:
        history.close()
        platform.stop()
    left, right = f"{args.small:,} jobs", f"{args.rows:,} jobs"
    if args.markdown:
        print(f"\n| measure | {left} | {right} |\n|---|---|---|")
        for name, value in small.items():
            print(f"| {name} | {value} | {large[name]} |")
    else:
        width = max(len(n) for n in small)
        print(f"\n{'measure':<{width}}  {left:<24}  {right}")
        for name, value in small.items():
            print(f"{name:<{width}}  {value:<24}  {large[name]}")
    print(f"\nfilled {args.rows - args.small:,} rows in {fill_s:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
