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

Then (unless ``--no-purge``) the jobs older than 30 days, two thirds of the large history,
are purged by the retention code as the monitor runs it (batches of 1,000, short pauses)
while the claim statement is timed over and over: the purge's rate, and the claims' times
during it beside those before it.

Each figure is a median of ``--reps`` runs, in two columns per size: over HTTP (or, for the
claim, the statement's round trip from this process), and the statement's own execution
time as Postgres reports it (``EXPLAIN ANALYZE``; writes rolled back), which the load of a
shared machine disturbs far less. ``--explain`` prints ``EXPLAIN (ANALYZE, BUFFERS)`` of the
claim and of the list statement for each filter at the large size.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from gristmill.config import Settings
from gristmill.db.embedded import EmbeddedPostgres
from gristmill.db.pool import open_pool
from gristmill.db.queries import Q
from gristmill.queue.retention import Purge, purge_expired_jobs
from gristmill.queue.rows import JobQuery, list_params_for
from run import Platform, machine, percentile

HERE = Path(__file__).resolve().parent
FILL = (HERE / "history_fill.sql").read_text()
PROBE = (HERE / "history_probe.sql").read_text()
BATCH = 100_000
NOOP = "def main():\n    return None\n"

#: name -> query parameters of jobs/list (the UI's filters; see frontend/src/pages/Runs.svelte).
LIST_ALL = "no filter (Runs page)"
LISTS: dict[str, dict[str, Any]] = {
    LIST_ALL: {"per_page": 50},
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
        # The fill's writes flushed now, not during the measures.
        self.conn.execute("CHECKPOINT")
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

    def statement_ms(self, query: str, params: dict[str, Any], reps: int) -> list[float]:
        """The statement's own execution time as Postgres reports it (``EXPLAIN ANALYZE``,
        its writes rolled back): what the machine's load and HTTP add is left out."""
        text = psycopg.ClientCursor(self.conn).mogrify(query, params)  # type: ignore[arg-type]
        times = []
        for _ in range(reps):
            with self.conn.transaction(force_rollback=True):
                plan = self.conn.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + text  # type: ignore[operator]
                ).fetchone()
            assert plan is not None
            times.append(float(plan[0][0]["Execution Time"]))
        return times

    def claim_ms(self, reps: int) -> list[float]:
        """The claim statement's round trip on a queued job, each claim rolled back."""
        tag = self.probe_tag()
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

    def probe_tag(self) -> str:
        """The tag of a queued job no worker serves (made once)."""
        if not hasattr(self, "_tag"):
            self._tag = f"bench-claim-{uuid.uuid4().hex[:8]}"
            self.conn.execute(PROBE, {"id": uuid.uuid4(), "tag": self._tag})  # type: ignore[arg-type]
        return self._tag

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


def job_query(params: dict[str, Any], *, completed_only: bool = False) -> JobQuery:
    """The list statement's query for the HTTP filters ``params`` (as the route builds it)."""
    flag = {"true": True, "false": False}
    return JobQuery(
        per_page=int(params.get("per_page", 50)),
        page=int(params.get("page", 1)),
        completed_only=completed_only,
        path_exact=params.get("script_path_exact"),
        path_start=params.get("script_path_start"),
        created_by=params.get("created_by"),
        success=flag.get(params.get("success", "")),
        running=flag.get(params.get("running", "")),
        job_kinds=params["job_kinds"].split(",") if "job_kinds" in params else None,
        trigger_kind="schedule" if "schedule_path" in params else None,
        trigger=params.get("schedule_path"),
        parent_job=uuid.UUID(params["parent_job"]) if "parent_job" in params else None,
        created_after=dt.datetime.fromisoformat(params["created_after"])
        if "created_after" in params
        else None,
    )


#: A measure: its HTTP (or client) times and its statement's own times, in ms.
Measure = tuple[list[float], list[float]]


def measure(platform: Platform, history: History, reps: int) -> dict[str, Measure]:
    out: dict[str, Measure] = {}
    client = platform.client
    tag = history.probe_tag()
    out["claim (1 queued job): round trip, statement"] = (
        history.claim_ms(reps * 2),
        history.statement_ms(Q["claim_job"], {"tags": [tag], "worker": "bench"}, reps),
    )
    walls = []
    for _ in range(reps):
        start = time.perf_counter()
        r = client.post("/jobs/run_wait_result/p/u/bench/noop", json={})
        walls.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    out["no-op job, run_wait_result"] = (walls, [])
    flow_id = history.a_flow_with_steps()
    lists = [(f"jobs/list, {name}", "/jobs/list", name) for name in LISTS]
    lists.append(("jobs/completed/list, no filter", "/jobs/completed/list", LIST_ALL))
    for label, route, name in lists:
        params = list_params(name, flow_id)

        def call(route: str = route, params: dict[str, Any] = params) -> None:
            client.get(route, params=params).raise_for_status()

        call()  # warm-up
        query = job_query(params, completed_only=route.startswith("/jobs/completed"))
        out[label] = (
            timed(call, reps),
            history.statement_ms(Q["list_jobs"], list_params_for("main", query), reps),
        )
    sample = history.sample(reps)
    results, gets, result_sql, get_sql = [], [], [], []
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
        ids = {"id": job_id, "workspace_id": "main"}
        result_sql += history.statement_ms(Q["get_completed"], ids, 1)
        # The route's two statements: the job, then its logs.
        job_ms = history.statement_ms(Q["get_job"], ids, 1)[0]
        get_sql.append(job_ms + history.statement_ms(Q["get_logs"], {"id": job_id}, 1)[0])
    out["jobs_u/completed/get_result/{id}"] = (results, result_sql)
    out["jobs_u/get/{id} (with logs)"] = (gets, get_sql)
    return out


def explain(history: History, flow_id: str) -> None:
    """The plans of the claim, of the list statement for each filter (as an admin) and of
    one batch of the retention purge."""
    plans: list[tuple[str, str, dict[str, Any]]] = [
        ("claim", Q["claim_job"], {"tags": [history.probe_tag()], "worker": "bench"})
    ]
    for name in LISTS:
        query = job_query(list_params(name, flow_id))
        plans.append((name, Q["list_jobs"], list_params_for("main", query)))
    # One batch of the retention purge (rolled back like the others).
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    batch = {"retention_s": 30 * 86400, "floor": floor, "batch": 1000}
    plans.append(("retention batch", Q["retention_delete_batch"], batch))
    for name, statement, params in plans:
        text = psycopg.ClientCursor(history.conn).mogrify(statement, params)  # type: ignore[arg-type]
        with history.conn.transaction(force_rollback=True):
            plan = history.conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) " + text  # type: ignore[operator]
            ).fetchall()
        print(f"\n### {name}\n")
        print("\n".join(r[0] for r in plan))


def purge_during_claims(history: History, platform: Platform) -> str:
    """Retention at scale: the jobs older than 30 days (two thirds of the history) purged as
    the monitor purges them (batches of 1000, short pauses; here in one pass), while the
    claim statement is timed over and over: the queue must not wait for the purge."""
    settings = Settings(job_retention_s=30 * 86400)
    conninfo = EmbeddedPostgres(platform.data_dir).conninfo

    async def purge() -> Purge:
        pool = await open_pool(conninfo, max_size=2, name="bench-purge")
        try:
            return await purge_expired_jobs(pool, settings, max_batches=10**9)
        finally:
            await pool.close()

    done: list[Purge] = []
    before = history.claim_ms(50)
    thread = threading.Thread(target=lambda: done.append(asyncio.run(purge())))
    start = time.perf_counter()
    thread.start()
    claims: list[float] = []
    while thread.is_alive():
        claims += history.claim_ms(1)
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    assert done, "the purge failed"
    result = done[0]
    return (
        f"retention purge of {result.deleted:,} jobs completed over 30 days ago (with their"
        f" results and logs; {result.batches} batches of 1,000): {elapsed:.0f} s,"
        f" {result.deleted / elapsed:,.0f} jobs/s. Claim round trip meanwhile: p50"
        f" {statistics.median(claims):.2f} ms, p99 {percentile(claims, 0.99):.2f} ms, max"
        f" {max(claims):.2f} ms ({len(claims)} claims); before it: p50"
        f" {statistics.median(before):.2f} ms, max {max(before):.2f} ms"
    )


def cell(times: list[float]) -> str:
    return f"{statistics.median(times):.2f}" if times else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="the large history's size")
    parser.add_argument("--small", type=int, default=1000, help="the small history's size")
    parser.add_argument("--reps", type=int, default=20, help="requests per measure")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the list plans at the end")
    parser.add_argument(
        "--no-purge",
        dest="purge",
        action="store_false",
        help="skip the retention purge of the large history (timed, with claims meanwhile)",
    )
    args = parser.parse_args()
    # The history is spread over 90 days: with the default retention (30 days) the
    # platform's monitor would purge part of it while it is measured.
    os.environ["JOB_RETENTION_SECS"] = "0"
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
        purged = purge_during_claims(history, platform) if args.purge else ""
    finally:
        history.close()
        platform.stop()
    small_n, large_n = f"{args.small:,}", f"{args.rows:,}"
    head = [
        "measure (median ms)",
        f"HTTP, {small_n} jobs",
        f"HTTP, {large_n} jobs",
        f"statement, {small_n}",
        f"statement, {large_n}",
    ]
    table = [
        [name, cell(http), cell(large[name][0]), cell(sql), cell(large[name][1])]
        for name, (http, sql) in small.items()
    ]
    if args.markdown:
        print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for row in table:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head))]
        print()
        for row in [head, *table]:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    if purged:
        print(f"\n{purged}")
    print(f"\nfilled {args.rows - args.small:,} rows in {fill_s:.0f} s; {machine()}")


if __name__ == "__main__":
    main()
