"""Database outages, for real: the module's platform runs on a Postgres of its own, which the
tests stop and start again under it. Requests fail fast (503 with Retry-After), a job that
ends during the outage is recorded once when the database returns, a job whose worker stayed
alive is not taken for a zombie however long the outage, a result kept in the spool is
recorded by the next worker process, and a late result of an attempt the monitor gave away
is refused."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from gristmill.config import Settings
from gristmill.db.embedded import EmbeddedPostgres
from gristmill.db.migrations import apply_migrations
from gristmill.db.pool import GristmillPool
from gristmill.db.queries import Q
from gristmill.queue.claim import claim_job, complete_job
from gristmill.queue.states import JobStatus
from gristmill.queue.zombies import run_monitor
from gristmill.server.platform import Platform
from gristmill.testing.pytest_plugin import (
    SUPERADMIN_SECRET,
    api_client,
    share_etc_copies,
    started_platform,
)
from gristmill.testing.waiting import wait_until
from gristmill.worker.spool import Spool, SpooledResult

#: Short, so that every outage here lasts longer than it.
ZOMBIE_TIMEOUT_S = 2

#: Prints, sleeps, prints again and ends.
SLEEPER = (
    "import time\n"
    "def main(s: float):\n"
    "    print('start', flush=True)\n"
    "    time.sleep(s)\n"
    "    print('end', flush=True)\n"
    "    return {'slept': s}\n"
)


class Cluster:
    """A Postgres of the module's own, to stop and start under its platform."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gm-outage-pg-", dir="/var/tmp"))
        self.root.chmod(0o755)
        self.server = EmbeddedPostgres(self.root, fsync=False)

    def start(self) -> str:
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def remove(self) -> None:
        self.server.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


def _settings(data_dir: Path, conninfo: str, *, num_workers: int = 2) -> Settings:
    share_etc_copies(data_dir)
    return Settings(
        data_dir=data_dir,
        database_url=conninfo,
        num_workers=num_workers,
        superadmin_secret=SUPERADMIN_SECRET,
        sleep_queue_ms=1000,
        heartbeat_s=0.5,
        log_flush_ms=50,
        database_connections=6,
        zombie_job_timeout_s=ZOMBIE_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def outage_settings(cluster: Cluster) -> Iterator[Settings]:
    data_dir = Path(tempfile.mkdtemp(prefix="gm-outage-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    try:
        yield _settings(data_dir, cluster.server.conninfo)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="module")
async def platform(outage_settings: Settings) -> AsyncIterator[Platform]:
    async with started_platform(outage_settings) as started:
        yield started


@pytest_asyncio.fixture(scope="module")
async def api(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(platform) as client:
        yield client


def sql(
    cluster: Cluster, query: str, params: dict[str, Any] | None = None, *, dbname: str = ""
) -> list[Any]:
    conninfo = cluster.server.conninfo
    if dbname:
        conninfo = conninfo.replace("dbname=gristmill", f"dbname={dbname}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


async def start_sleeper(api: httpx.AsyncClient, cluster: Cluster, seconds: float) -> str:
    r = await api.post(
        "/w/main/jobs/run/preview",
        json={"content": SLEEPER, "language": "python3", "args": {"s": seconds}},
    )
    assert r.status_code == 201, r.text
    job_id = r.text

    async def started() -> bool:
        return "start" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

    await wait_until(started, timeout=20, interval=0.1, what=f"job {job_id} to start")
    return job_id


async def test_requests_fail_fast_and_recover(api: httpx.AsyncClient, cluster: Cluster) -> None:
    assert (await api.get("/w/main/jobs/list")).status_code == 200
    cluster.stop()
    try:
        for _ in range(3):
            began = time.monotonic()
            r = await api.get("/w/main/jobs/list")
            took = time.monotonic() - began
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"]
            # The bound (1 s, not the pool's 30 s wait); typically milliseconds.
            assert took < 1.0, took
    finally:
        cluster.start()

    async def answers() -> bool:
        return (await api.get("/w/main/jobs/list")).status_code == 200

    await wait_until(answers, timeout=10, interval=0.1, what="the API to answer again")


async def test_outage_longer_than_zombie_timeout_runs_nothing_twice(
    api: httpx.AsyncClient,
    cluster: Cluster,
    outage_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One job ends during the outage (its result is held, and spooled); one runs on
    # through it. The outage lasts twice ZOMBIE_JOB_TIMEOUT.
    ends_during = await start_sleeper(api, cluster, 1.0)
    runs_through = await start_sleeper(api, cluster, 5.0)
    attempts = {
        str(row[0]): (row[1], row[2])
        for row in sql(
            cluster,
            "SELECT id, worker, started_at FROM job_queue WHERE id = ANY(%(ids)s::uuid[])",
            {"ids": [ends_during, runs_through]},
        )
    }
    assert len(attempts) == 2
    cluster.stop()
    spooled = outage_settings.data_dir / "spool" / f"{ends_during}.json"
    try:

        async def in_spool() -> bool:
            return spooled.exists()

        await wait_until(in_spool, timeout=10, interval=0.1, what="the result to be spooled")
        await asyncio.sleep(2 * ZOMBIE_TIMEOUT_S)
    finally:
        cluster.start()

    async def both_done() -> bool:
        rows = sql(
            cluster,
            "SELECT count(*) FROM job_completed WHERE id = ANY(%(ids)s::uuid[])",
            {"ids": [ends_during, runs_through]},
        )
        return rows[0][0] == 2

    await wait_until(both_done, timeout=20, interval=0.1, what="both jobs to be recorded")

    async def out_of_spool() -> bool:  # removed right after the commit
        return not spooled.exists()

    await wait_until(out_of_spool, timeout=5, interval=0.1, what="the spooled result to be removed")
    for job_id in (ends_during, runs_through):
        row = sql(
            cluster,
            "SELECT worker, started_at, status, result FROM job_completed WHERE id = %(id)s",
            {"id": job_id},
        )[0]
        # The attempt that started before the outage is the one recorded: never restarted.
        assert (row[0], row[1]) == attempts[job_id]
        assert row[2] == "success"
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
        assert logs.count("start") == 1 and logs.count("end") == 1, logs
        assert "previous attempt interrupted" not in logs
    # No zombie, and no claim failure logged (each per attempt).
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "cannot claim" in m or "stopped answering" in m]


async def _claim(conn: psycopg.AsyncConnection, worker: str) -> dict[str, Any]:
    claim = await claim_job(conn, ["outage-test"], worker)
    assert claim.job is not None
    return claim.job


def _entry(job: dict[str, Any], worker: str, result: str) -> SpooledResult:
    return SpooledResult(
        job_id=job["id"],
        workspace_id=job["workspace_id"],
        worker=worker,
        started_at=job["started_at"],
        status=JobStatus.SUCCESS,
        result_json=result,
        log_offset=0,
        logs="held through an outage\n",
        unmasked=True,
    )


async def test_spooled_results_recorded_by_the_next_process_late_ones_refused(
    platform: Platform, cluster: Cluster, outage_settings: Settings
) -> None:
    gone = "wk-default-gone-1-0"
    async with await psycopg.AsyncConnection.connect(
        cluster.server.conninfo, autocommit=True
    ) as conn:
        for _ in range(2):
            await conn.execute(
                "INSERT INTO job (id, workspace_id, kind, language, raw_code, args, tag, "
                "created_by, permissioned_as, email) SELECT gen_random_uuid(), 'main', "
                "'preview', 'python3', 'def main(): pass', '{}', 'outage-test', 'admin', "
                "'u/admin', 'admin@gristmill.test' RETURNING id"
            )
        await conn.execute(
            "INSERT INTO job_queue (id, workspace_id, tag) "
            "SELECT id, 'main', 'outage-test' FROM job WHERE tag = 'outage-test'"
        )
        # Kept: the first attempt still holds its job when the next process starts.
        kept = await _claim(conn, gone)
        # Late: the monitor gave the job back to the queue, and a worker of the same name
        # (a process restarted with the same pid) took it again: the first attempt's
        # result must not complete the second.
        late = await _claim(conn, gone)
        await conn.execute(Q["requeue_job"], {"id": late["id"], "worker": gone})
        again = await _claim(conn, gone)
        assert again["id"] == late["id"] and again["started_at"] != late["started_at"]

    # The spool of a worker process on another data directory, stopped during an outage.
    data_dir = Path(tempfile.mkdtemp(prefix="gm-outage-next-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    try:
        spool = Spool(data_dir / "spool")
        spool.put(_entry(kept, gone, '{"kept": true}'))
        spool.put(_entry(late, gone, '{"late": true}'))
        settings = replace(
            _settings(data_dir, cluster.server.conninfo, num_workers=1), mode="worker"
        )
        async with started_platform(settings):

            async def replayed() -> bool:
                return not list(spool.path.glob("*.json"))

            await wait_until(replayed, timeout=10, interval=0.1, what="the spool to be replayed")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    rows = sql(
        cluster,
        "SELECT c.id, c.result, c.worker, l.content FROM job_completed c "
        "LEFT JOIN job_log l ON l.job_id = c.id "
        "WHERE c.id = ANY(%(ids)s::uuid[])",
        {"ids": [kept["id"], late["id"]]},
    )
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (kept["id"], {"kept": True}, gone, "held through an outage\n")
    ]
    # The second attempt still runs, and its own completion is taken.
    async with await psycopg.AsyncConnection.connect(
        cluster.server.conninfo, autocommit=True
    ) as conn:
        common = {
            "job_id": late["id"],
            "worker": gone,
            "status": JobStatus.SUCCESS,
            "result_json": "1",
            "log_offset": 0,
            "logs": "",
        }
        assert not await complete_job(conn, **common, started_at=late["started_at"])
        assert await complete_job(conn, **common, started_at=again["started_at"])


async def test_a_worker_stopped_during_an_outage_leaves_its_result_to_the_next(
    api: httpx.AsyncClient, cluster: Cluster
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="gm-outage-stop-", dir="/var/tmp"))
    data_dir.chmod(0o755)
    settings = replace(
        _settings(data_dir, cluster.server.conninfo, num_workers=1),
        mode="worker",
        worker_tags=("outage-only",),
    )
    spooled = data_dir / "spool"
    try:
        async with started_platform(settings):
            r = await api.post(
                "/w/main/jobs/run/preview",
                json={
                    "content": SLEEPER,
                    "language": "python3",
                    "args": {"s": 1.0},
                    "tag": "outage-only",
                },
            )
            assert r.status_code == 201, r.text
            job_id = r.text

            async def started() -> bool:
                return "start" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

            await wait_until(started, timeout=20, interval=0.1, what="the job to start")
            attempt = sql(
                cluster,
                "SELECT worker, started_at FROM job_queue WHERE id = %(id)s",
                {"id": job_id},
            )[0]
            cluster.stop()
            try:

                async def in_spool() -> bool:
                    return (spooled / f"{job_id}.json").exists()

                await wait_until(
                    in_spool, timeout=10, interval=0.1, what="the result to be spooled"
                )
            except BaseException:
                cluster.start()
                raise
            # The process stops while the database is still away.
        cluster.start()
        assert (spooled / f"{job_id}.json").exists()
        # The next worker process on this data directory (its workers have the same names:
        # same pid; the attempt's start tells them apart) records it before claiming.
        async with started_platform(settings):

            async def recorded() -> bool:
                return not (spooled / f"{job_id}.json").exists()

            await wait_until(
                recorded, timeout=10, interval=0.1, what="the spooled result to be recorded"
            )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    row = sql(
        cluster,
        "SELECT worker, started_at, status, result FROM job_completed WHERE id = %(id)s",
        {"id": job_id},
    )
    assert row == [(attempt[0], attempt[1], "success", {"slept": 1.0})]

    # The module platform's pool sees the database again at its next probe (0.5 s).
    async def answers() -> bool:
        return (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).status_code == 200

    await wait_until(answers, timeout=10, interval=0.1, what="the API to answer again")
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
    assert logs.count("start") == 1 and logs.count("end") == 1, logs


async def test_monitor_waits_a_zombie_timeout_after_regaining_the_database(
    cluster: Cluster, outage_settings: Settings
) -> None:
    # The database stays up; only this monitor's process is cut off from it (its
    # connection string points nowhere meanwhile). A job whose worker has been silent for
    # an hour is a zombie, but the monitor must first give the workers the same cut may
    # have silenced a full ZOMBIE_JOB_TIMEOUT after it regains the database.
    # A database of its own: the module platform's monitor, never cut off, would requeue
    # the job at once (rightly so).
    with psycopg.connect(cluster.server.conninfo, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS outage_monitor")
        conn.execute("CREATE DATABASE outage_monitor")
    reachable = cluster.server.conninfo.replace("dbname=gristmill", "dbname=outage_monitor")
    with psycopg.connect(reachable) as conn:
        apply_migrations(conn)
    target = {"conninfo": reachable}
    pool = GristmillPool(
        lambda: target["conninfo"],
        kwargs={"application_name": "outage-monitor", "autocommit": True},
        min_size=1,
        max_size=2,
        open=False,
        reconnect_timeout=2,
    )
    await pool.open(wait=True, timeout=10)
    job_id = str(uuid.uuid4())
    sql(
        cluster,
        "INSERT INTO job (id, workspace_id, kind, language, raw_code, args, tag, created_by, "
        "permissioned_as, email) VALUES (%(id)s, 'main', 'preview', 'python3', "
        "'def main(): pass', '{}', 'outage-test-2', 'admin', 'u/admin', 'admin@gristmill.test')",
        {"id": job_id},
        dbname="outage_monitor",
    )
    sql(
        cluster,
        "INSERT INTO job_queue (id, workspace_id, tag, running, started_at, ping, worker) "
        "VALUES (%(id)s, 'main', 'outage-test-2', true, now() - interval '1 hour', "
        "now() - interval '1 hour', 'wk-silent-0')",
        {"id": job_id},
        dbname="outage_monitor",
    )

    def running() -> bool:
        return bool(
            sql(
                cluster,
                "SELECT running FROM job_queue WHERE id = %(id)s",
                {"id": job_id},
                dbname="outage_monitor",
            )[0][0]
        )

    monitor = asyncio.create_task(run_monitor(pool, outage_settings))
    try:
        target["conninfo"] = reachable.replace("host=", "host=/nonexistent")
        sql(
            cluster,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'outage-monitor'",
        )

        async def cut() -> bool:
            return pool.is_down

        await wait_until(
            cut, timeout=10, interval=0.1, what="the monitor's pool to lose the database"
        )
        await asyncio.sleep(1.0)
        target["conninfo"] = reachable

        async def back() -> bool:
            return not pool.is_down

        await wait_until(
            back, timeout=10, interval=0.1, what="the monitor's pool to reach the database again"
        )
        regained = time.monotonic()
        await asyncio.sleep(1.0)
        # The server's start counts as a ping: it must be older than the time-out here, or
        # that rule (not the monitor's wait) would be what keeps the job.
        assert sql(cluster, "SELECT now() - pg_postmaster_start_time() > '2 s'")[0][0]
        assert running(), "requeued before a full ZOMBIE_JOB_TIMEOUT of the database answering"

        async def requeued() -> bool:
            return not running()

        # Really a zombie: requeued once the grace is over.
        await wait_until(requeued, timeout=10, interval=0.1, what="the zombie to be requeued")
        assert time.monotonic() - regained >= ZOMBIE_TIMEOUT_S - 0.5
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
        await pool.close()
        with psycopg.connect(cluster.server.conninfo, autocommit=True) as conn:
            conn.execute("DROP DATABASE outage_monitor WITH (FORCE)")
