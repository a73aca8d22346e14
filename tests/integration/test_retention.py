"""Job retention on a real Postgres (gristmill.queue.retention): old completed jobs go with
their results and logs, in batches, by one purger at a time; queued and running jobs, recent
ones and the steps of unfinished flows stay; claims go on during a large purge. And the
history's indexes: the job list walks one at some thousands of rows."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from gristmill.config import ConfigError, Settings
from gristmill.db.pool import open_pool
from gristmill.db.queries import Q
from gristmill.queue.claim import claim_job
from gristmill.queue.retention import LOCK_KEY, purge_expired_jobs
from gristmill.queue.rows import JobQuery, list_params_for
from gristmill.testing.pytest_plugin import started_platform
from psycopg_pool import AsyncConnectionPool

DAY = 86400
SETTINGS = Settings(job_retention_s=30 * DAY)

#: ``n`` completed jobs ``age_days`` old, each with a two-chunk log and a secret read;
#: returns their ids. ``parent``/``root``: a flow's steps.
INSERT_COMPLETED = """
WITH j AS (
    INSERT INTO job (id, workspace_id, kind, runnable_path, tag, created_by, permissioned_as,
                     email, parent_job, root_job, created_at)
    SELECT gen_random_uuid(), 'main', %(kind)s, 'u/admin/retention', 'python3', 'admin',
           'u/admin', 'admin@example.com', %(parent)s, %(root)s,
           now() - make_interval(days => %(age_days)s) - make_interval(secs => g)
    FROM generate_series(1, %(n)s) g
    RETURNING id, created_at
), c AS (
    INSERT INTO job_completed (id, workspace_id, status, result, started_at, completed_at)
    SELECT id, 'main', 'success', '{"ok": true}', created_at, created_at FROM j
), l AS (
    INSERT INTO job_log (job_id, log_offset, content)
    SELECT id, o, 'line' FROM j, (VALUES (0), (4)) AS v(o)
), s AS (
    INSERT INTO job_secret_read (job_id, path) SELECT id, 'u/admin/secret' FROM j
)
SELECT id FROM j
"""

#: A queued (or, with ``running``, running) job ``age_days`` old.
INSERT_QUEUED = """
WITH j AS (
    INSERT INTO job (id, workspace_id, kind, runnable_path, tag, created_by, permissioned_as,
                     email, created_at)
    VALUES (%(id)s, 'main', %(kind)s, 'u/admin/retention', %(tag)s, 'admin', 'u/admin',
            'admin@example.com', now() - make_interval(days => %(age_days)s))
    RETURNING id
)
INSERT INTO job_queue (id, workspace_id, tag, running, started_at, ping, worker,
                       scheduled_for)
SELECT id, 'main', %(tag)s, %(running)s, CASE WHEN %(running)s THEN now() END,
       CASE WHEN %(running)s THEN now() END, CASE WHEN %(running)s THEN 'w1' END,
       now() - make_interval(days => %(age_days)s)
FROM j
"""


@pytest_asyncio.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    pool = await open_pool(database_url, max_size=4, name="retention-test")
    try:
        yield pool
    finally:
        await pool.close()


async def completed(
    pool: AsyncConnectionPool,
    n: int,
    age_days: float,
    *,
    kind: str = "script",
    parent: uuid.UUID | None = None,
    root: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    params = {"n": n, "age_days": age_days, "kind": kind, "parent": parent, "root": root}
    async with pool.connection() as conn:
        rows = await (await conn.execute(INSERT_COMPLETED, params)).fetchall()  # type: ignore[arg-type]
    return [r[0] for r in rows]


async def queued(
    pool: AsyncConnectionPool,
    age_days: float,
    *,
    running: bool = False,
    kind: str = "script",
    tag: str = "python3",
) -> uuid.UUID:
    job_id = uuid.uuid4()
    params = {"id": job_id, "age_days": age_days, "running": running, "kind": kind, "tag": tag}
    async with pool.connection() as conn:
        await conn.execute(INSERT_QUEUED, params)  # type: ignore[arg-type]
    return job_id


async def scalar(pool: AsyncConnectionPool, query: str, *params: Any) -> Any:
    async with pool.connection() as conn:
        row = await (await conn.execute(query, params)).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return row[0]


async def present(pool: AsyncConnectionPool, table: str, column: str, ids: list[uuid.UUID]) -> int:
    return await scalar(
        pool, f"SELECT count(DISTINCT {column}) FROM {table} WHERE {column} = ANY(%s)", ids
    )


async def test_old_completed_jobs_go_in_batches_with_their_logs_and_the_rest_stays(
    pool: AsyncConnectionPool,
) -> None:
    old = await completed(pool, 230, age_days=40)
    recent = await completed(pool, 20, age_days=1)
    waiting = [await queued(pool, 40) for _ in range(3)]
    running = [await queued(pool, 40, running=True) for _ in range(2)]
    # A flow still running (suspended for weeks, say): its old steps stay, the flow reads
    # their results. A flow that ended: its steps go with it.
    live_flow = await queued(pool, 40, kind="flow", tag="flow")
    live_steps = await completed(pool, 4, age_days=40, parent=live_flow, root=live_flow)
    [done_flow] = await completed(pool, 1, age_days=40, kind="flow")
    done_steps = await completed(pool, 3, age_days=40, parent=done_flow, root=done_flow)
    # A schedule's runs: one handled (its ledger row goes with it), one whose end was not
    # handled yet (kept: its handlers read it, and a run without a job would be pushed again).
    [handled, unhandled] = await completed(pool, 2, age_days=40)
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO schedule_run (workspace_id, schedule_path, tick, job_id, runnable_path,"
            " is_flow, pushed_at, handled_at) SELECT 'main', 'u/admin/every_minute',"
            " now() - make_interval(days => 40, secs => n), id, 'u/admin/retention', false,"
            " now(), CASE WHEN n = 1 THEN now() END"
            " FROM unnest(%s::uuid[]) WITH ORDINALITY AS t(id, n)",
            ([handled, unhandled],),
        )
    doomed = [*old, done_flow, *done_steps, handled]  # 235 jobs

    # A pass does at most max_batches batches: a large backlog takes several passes.
    first = await purge_expired_jobs(pool, SETTINGS, batch_size=100, max_batches=1)
    assert (first.deleted, first.batches, first.locked) == (100, 1, True)
    rest = await purge_expired_jobs(pool, SETTINGS, batch_size=100, pause_s=0.01)
    assert (rest.deleted, rest.batches) == (135, 2)
    again = await purge_expired_jobs(pool, SETTINGS, batch_size=100)
    assert again.deleted == 0

    assert await present(pool, "job", "id", doomed) == 0
    assert await present(pool, "job_log", "job_id", doomed) == 0
    assert await present(pool, "job_secret_read", "job_id", doomed) == 0
    assert await present(pool, "schedule_run", "job_id", [handled, unhandled]) == 1
    kept = [*recent, *live_steps, unhandled]
    assert await present(pool, "job_completed", "id", kept) == len(kept)
    assert await present(pool, "job_log", "job_id", kept) == len(kept)
    alive = [*waiting, *running, live_flow]
    assert await present(pool, "job_queue", "id", alive) == len(alive)


async def test_off_at_zero_and_the_instance_setting_wins(pool: AsyncConnectionPool) -> None:
    await completed(pool, 10, age_days=40)
    off = await purge_expired_jobs(pool, Settings(job_retention_s=0))
    assert off.deleted == 0
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO instance_setting (name, value) VALUES ('retention_period_secs', %s)",
            (str(60 * DAY),),
        )
    # 60 days stored: the 40-day-old jobs stay though JOB_RETENTION_SECS says 30 days.
    assert (await purge_expired_jobs(pool, SETTINGS)).deleted == 0
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE instance_setting SET value = %s WHERE name = 'retention_period_secs'",
            (str(20 * DAY),),
        )
    assert (await purge_expired_jobs(pool, Settings(job_retention_s=0))).deleted == 10
    # A value stored as a JSON string of digits counts too; anything else is ignored.
    await completed(pool, 3, age_days=40)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE instance_setting SET value = to_jsonb(%s::text)"
            " WHERE name = 'retention_period_secs'",
            (str(20 * DAY),),
        )
    assert (await purge_expired_jobs(pool, Settings(job_retention_s=0))).deleted == 3


def test_the_setting_is_windmills() -> None:
    assert Settings.from_env({}).job_retention_s == 30 * DAY  # Windmill's default
    assert Settings.from_env({"JOB_RETENTION_SECS": "0"}).job_retention_s == 0
    assert Settings.from_env({"JOB_RETENTION_SECS": "3600"}).job_retention_s == 3600
    with pytest.raises(ConfigError, match="JOB_RETENTION_SECS"):
        Settings.from_env({"JOB_RETENTION_SECS": "-1"})


async def test_one_purger_at_a_time(pool: AsyncConnectionPool, database_url: str) -> None:
    ids = await completed(pool, 300, age_days=40)
    # Another server's purge holds the lock: this one does nothing and says so.
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as other:
        await other.execute(Q["retention_try_lock"], {"key": LOCK_KEY})
        busy = await purge_expired_jobs(pool, SETTINGS, batch_size=50)
        assert (busy.deleted, busy.locked) == (0, False)
        assert await present(pool, "job", "id", ids) == 300
    # Two monitors at once (two pools: two servers): every job deleted once, no error.
    second = await open_pool(database_url, max_size=2, name="retention-test-2")
    try:
        a, b = await asyncio.gather(
            purge_expired_jobs(pool, SETTINGS, batch_size=50, pause_s=0.01),
            purge_expired_jobs(second, SETTINGS, batch_size=50, pause_s=0.01),
        )
    finally:
        await second.close()
    assert a.deleted + b.deleted == 300
    assert not (a.locked and b.locked and a.deleted and b.deleted), (a, b)
    assert await present(pool, "job", "id", ids) == 0


async def test_claims_go_on_during_a_large_purge(pool: AsyncConnectionPool) -> None:
    await completed(pool, 10_000, age_days=40)
    purge = asyncio.create_task(
        purge_expired_jobs(pool, SETTINGS, batch_size=500, max_batches=100, pause_s=0.02)
    )
    claims: list[float] = []
    while not purge.done():
        job_id = await queued(pool, 0, tag="retention-probe")
        start = time.perf_counter()
        async with pool.connection() as conn:
            claim = await claim_job(conn, ["retention-probe"], "probe-worker")
        claims.append(time.perf_counter() - start)
        assert claim.job is not None and claim.job["id"] == job_id
    result = await purge
    # 20 full batches, and one that finds nothing left.
    assert (result.deleted, result.batches) == (10_000, 21)
    # Claims were made all along the purge, none held up by it (a generous bound: the
    # purge's batches are short transactions on other rows, the claim waits for none).
    assert len(claims) >= 5, claims
    assert max(claims) < 1.0, max(claims)


async def test_the_job_list_walks_an_index(pool: AsyncConnectionPool) -> None:
    await completed(pool, 5000, age_days=2)
    async with pool.connection() as conn:
        await conn.execute("ANALYZE job")
        await conn.execute("ANALYZE job_completed")
        plans = {}
        for name, query in {
            "none": JobQuery(per_page=50),
            "created_by": JobQuery(per_page=50, created_by="admin"),
            "path": JobQuery(per_page=50, path_exact="u/admin/retention"),
        }.items():
            cur = psycopg.AsyncClientCursor(conn)
            text = cur.mogrify(Q["list_jobs"], list_params_for("main", query))
            rows = await (await conn.execute("EXPLAIN " + text)).fetchall()  # type: ignore[operator]
            plans[name] = "\n".join(r[0] for r in rows)
    for name, plan in plans.items():
        # The history's part: an index of job in created_at order, cut at the page's end.
        assert "Seq Scan on job " not in plan, f"{name}:\n{plan}"
        assert "Index Scan using job_by_" in plan, f"{name}:\n{plan}"


async def test_the_monitor_purges(settings: Settings) -> None:
    """A server's monitor runs the purge on its own (each pass: ZOMBIE_JOB_TIMEOUT / 4 s,
    1 s at least)."""
    async with started_platform(settings.with_overrides(zombie_job_timeout_s=4)) as platform:
        assert platform.pool is not None
        ids = await completed(platform.pool, 3, age_days=40)
        recent = await completed(platform.pool, 1, age_days=1)
        deadline = time.monotonic() + 15
        while await present(platform.pool, "job", "id", ids):
            assert time.monotonic() < deadline, "the monitor did not purge the old jobs"
            await asyncio.sleep(0.2)
        assert await present(platform.pool, "job", "id", recent) == 1
