"""Workers under adverse conditions: dead workers, dropped connections, restarts, odd output."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
from gristmill import hookimpl
from gristmill.api.app import create_app
from gristmill.config import Settings
from gristmill.db import open_pool
from gristmill.db.queries import Q
from gristmill.plugins import build_plugin_manager, load_runtimes
from gristmill.queue.enqueue import NewJob, push_job
from gristmill.queue.zombies import handle_zombies
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, SharedRuntimes, shared_runtimes

from .test_api_jobs import completed, save, wait_until

SLEEPER = "import time\ndef main(s: float = 2):\n    print('start', flush=True)\n    time.sleep(s)\n    return 'done'\n"


async def start_sleeper(api: httpx.AsyncClient, seconds: float) -> str:
    """Queue the SLEEPER job; return its id once it has started (printed its first line)."""
    r = await api.post(
        "/w/main/jobs/run/preview",
        json={"content": SLEEPER, "language": "python3", "args": {"s": seconds}},
    )
    job_id = r.text

    async def started() -> bool:
        return "start" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

    await wait_until(started, timeout=15)
    return job_id


@asynccontextmanager
async def running(
    settings: Settings, plugins: list[object] | None = None
) -> AsyncIterator[tuple[Platform, httpx.AsyncClient]]:
    prepared = await asyncio.to_thread(prepare_database, settings.database_url)
    # Plugins of the test's own need runtimes loaded for them; otherwise the session's.
    if plugins:
        own = build_plugin_manager(extra=plugins)
        runtimes = SharedRuntimes(plugins=own, registry=load_runtimes(own))
    else:
        runtimes = shared_runtimes()
    platform = Platform(
        settings=settings,
        conninfo=settings.database_url,
        job_token_secret=prepared.job_token_secret,
        **runtimes,
    )
    await platform.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform)),
            base_url="http://gristmill.test/api",
            headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
            timeout=60,
        ) as api:
            yield platform, api
    finally:
        await platform.stop()


def sql(settings: Settings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


async def queue_preview(settings: Settings, code: str, **fields: Any) -> uuid.UUID:
    """Queue a job straight into the database, as another server would."""
    job = NewJob(
        workspace_id="main",
        kind="preview",
        tag="python3",
        args={},
        created_by="admin",
        permissioned_as="u/admin",
        email="admin@gristmill.local",
        language="python3",
        raw_code=code,
        **fields,
    )
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as conn:
        await push_job(conn, job)
    return job.id


async def test_a_zombie_job_is_restarted_and_completes(settings: Settings) -> None:
    settings = settings.with_overrides(zombie_job_timeout_s=1, num_workers=0)
    job_id = await queue_preview(settings, "def main():\n    print('ran')\n    return 7\n")
    # A worker claims it, then dies without a trace.
    sql(
        settings,
        "UPDATE job_queue SET running = true, worker = 'wk-dead', started_at = now(),"
        " ping = now() - interval '10 seconds' WHERE id = %s",
        job_id,
    )
    sql(
        settings,
        "INSERT INTO job_log (job_id, log_offset, content) VALUES (%s, 0, 'first try\n')",
        job_id,
    )
    pool = await open_pool(settings.database_url, max_size=2)
    try:
        assert await handle_zombies(pool, settings) == 1
        assert await handle_zombies(pool, settings) == 0
    finally:
        await pool.close()
    async with running(settings.with_overrides(num_workers=1)) as (_, api):
        outcome = await completed(api, str(job_id))
        assert outcome["result"] == 7
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
        assert logs.startswith("first try\n")
        assert "previous attempt interrupted" in logs and logs.endswith("ran\n")


async def test_zombies_fail_when_restarting_is_off(settings: Settings) -> None:
    settings = settings.with_overrides(
        zombie_job_timeout_s=1, restart_zombie_jobs=False, num_workers=0
    )
    job_id = await queue_preview(settings, "def main():\n    return 1\n")
    sql(
        settings,
        "UPDATE job_queue SET running = true, worker = 'wk-dead', started_at = now(),"
        " ping = now() - interval '10 seconds' WHERE id = %s",
        job_id,
    )
    async with running(settings) as (platform, api):
        assert platform.pool is not None
        assert await handle_zombies(platform.pool, settings) == 1
        outcome = (await api.get(f"/w/main/jobs_u/completed/get_result_maybe/{job_id}")).json()
        assert outcome["success"] is False
        error = outcome["result"]["error"]
        assert error["name"] == "ZombieJob" and "wk-dead" in error["message"]
        assert "RESTART_ZOMBIE_JOBS" in error["message"]


async def test_a_job_taken_over_is_stopped_and_not_completed_twice(settings: Settings) -> None:
    async with running(settings) as (_, api):
        job_id = await start_sleeper(api, 30)
        # The zombie monitor of another server gave the job to another worker.
        sql(
            settings,
            "UPDATE job_queue SET worker = 'wk-elsewhere' WHERE id = %s",
            uuid.UUID(job_id),
        )
        await asyncio.sleep(settings.heartbeat_s * 3 + 0.5)
        rows = sql(
            settings, "SELECT worker, running FROM job_queue WHERE id = %s", uuid.UUID(job_id)
        )
        assert rows == [("wk-elsewhere", True)]
        assert sql(settings, "SELECT 1 FROM job_completed WHERE id = %s", uuid.UUID(job_id)) == []


async def test_results_survive_a_dropped_database_connection(settings: Settings) -> None:
    async with running(settings) as (_, api):
        job_id = await start_sleeper(api, 1.5)
        # Every connection of this test database is cut, the listener's included.
        killed = sql(
            settings,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        assert len(killed) >= 2
        outcome = await completed(api, job_id)
        assert outcome["result"] == "done"
        # Nothing lost or duplicated: one history row, the whole log once.
        assert sql(
            settings, "SELECT count(*) FROM job_completed WHERE id = %s", uuid.UUID(job_id)
        ) == [(1,)]
        assert (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text == "start\n"
        # The listener is back: a synchronous run is answered at once.
        r = await api.post(
            "/w/main/jobs/run_wait_result/preview",
            json={"content": "def main():\n    return 2\n", "language": "python3"},
        )
        assert r.json() == 2


async def test_stopping_a_worker_requeues_its_running_job(settings: Settings) -> None:
    settings = settings.with_overrides(num_workers=1)
    async with running(settings) as (platform, api):
        job_id = await start_sleeper(api, 30)
        assert platform.workers is not None
        await platform.workers.stop(grace_s=0.2)
        platform.workers = None
        rows = sql(
            settings, "SELECT running, worker FROM job_queue WHERE id = %s", uuid.UUID(job_id)
        )
        assert rows == [(False, None)]
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
        assert "goes back to the queue" in logs
    sql(settings, "UPDATE job SET args = '{\"s\": 0}' WHERE id = %s", uuid.UUID(job_id))
    async with running(settings) as (_, api):
        assert (await completed(api, job_id))["result"] == "done"


async def test_odd_output_is_kept_readable(api: httpx.AsyncClient) -> None:
    code = (
        "import sys\n"
        "def main():\n"
        "    sys.stdout.buffer.write(b'nul:\\x00 bad:\\xff\\xfe ok\\n')\n"
        "    sys.stdout.flush()\n"
        "    print('x' * 200000)\n"
        "    print('err', file=sys.stderr)\n"
        "    return 'fine'\n"
    )
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview", json={"content": code, "language": "python3"}
    )
    assert r.json() == "fine"
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{r.headers['x-job-id']}")).text
    assert logs.startswith("nul:\ufffd bad:\ufffd\ufffd ok\n")
    assert ("x" * 200000) in logs and logs.endswith("err\n")


async def test_a_result_the_database_refuses_fails_the_job_cleanly(api: httpx.AsyncClient) -> None:
    # A lone surrogate is valid JSON text (an escape) that Postgres refuses; the same
    # in cold and warm runs (a warm run has no result.json to corrupt).
    code = "def main():\n    return '\\ud800'\n"
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview", json={"content": code, "language": "python3"}
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "StoreError" and "could not be stored" in error["message"]


async def test_a_process_killed_by_a_signal_says_so(api: httpx.AsyncClient) -> None:
    code = "import os, signal\ndef main():\n    print('bye', flush=True)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview", json={"content": code, "language": "python3"}
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "ExecutionErr"
    assert "killed by signal 9" in error["message"] and "bye" in error["message"]


class ExtraEnv:
    @hookimpl
    def job_env(self, job: Any) -> Mapping[str, str]:
        return {"FROM_PLUGIN": job.language, "WM_WORKSPACE": "forged"}


async def test_a_job_sees_its_variables_and_nothing_of_the_worker(settings: Settings) -> None:
    os.environ["DATABASE_URL"] = settings.database_url
    os.environ["SUPERADMIN_SECRET"] = "leak-me"
    try:
        async with running(settings, plugins=[ExtraEnv()]) as (_, api):
            await save(api, "u/admin/env", "import os\ndef main():\n    return dict(os.environ)\n")
            r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/env", json={})
            env = r.json()
    finally:
        del os.environ["DATABASE_URL"], os.environ["SUPERADMIN_SECRET"]
    assert "DATABASE_URL" not in env and "SUPERADMIN_SECRET" not in env
    assert "GRISTMILL_DATA_DIR" not in env
    assert env["WM_WORKSPACE"] == "main", "a plugin cannot override the job variables"
    assert env["FROM_PLUGIN"] == "python3"
    assert env["WM_JOB_ID"] == r.headers["x-job-id"]
    assert env["WM_JOB_PATH"] == "u/admin/env"
    assert env["WM_PERMISSIONED_AS"] == "u/superadmin_secret"
    assert env["WM_STATE_PATH"] == "u/admin/env/superadmin_secret"
    assert env["WM_TOKEN"].startswith("jt.")
    assert env["BASE_INTERNAL_URL"].startswith("http://")


async def test_the_job_token_works_only_while_the_job_runs(settings: Settings) -> None:
    async with running(settings) as (_, api):
        code = "import os, time\ndef main():\n    print(os.environ['WM_TOKEN'], flush=True)\n    time.sleep(1)\n"
        job_id = (
            await api.post(
                "/w/main/jobs/run/preview", json={"content": code, "language": "python3"}
            )
        ).text

        async def token() -> str | None:
            logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
            return logs.strip() or None

        wm_token = await wait_until(token, timeout=15)
        headers = {"Authorization": f"Bearer {wm_token}"}
        me = (await api.get("/users/whoami", headers=headers)).json()
        assert me["job_id"] == job_id and me["username"] == "superadmin_secret"
        await completed(api, job_id)
        r = await api.get("/users/whoami", headers=headers)
        assert r.status_code == 401 and "finished" in r.text
        forged = wm_token[:-4] + "0000"
        assert (
            await api.get("/users/whoami", headers={"Authorization": f"Bearer {forged}"})
        ).status_code == 401


async def test_many_jobs_from_another_process_all_run_once(settings: Settings) -> None:
    """Jobs queued by another server reach this process's workers by notification."""
    async with running(settings.with_overrides(num_workers=3)) as (_, api):
        ids = [await queue_preview(settings, f"def main():\n    return {i}\n") for i in range(30)]
        results = [await completed(api, str(job_id)) for job_id in ids]
        assert [r["result"] for r in results] == list(range(30))
    rows = sql(settings, "SELECT count(*), count(DISTINCT id) FROM job_completed")
    assert rows == [(30, 30)]
    assert sql(settings, "SELECT count(*) FROM job_queue") == [(0,)]
    assert Q["claim_job"]  # the query the workers used exists by that name
