"""Settings that change how workers behave, observed on real jobs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import httpx
import psycopg
from gristmill.config import Settings
from gristmill.server.serve import configure_logging

from .test_api_jobs import completed, started
from .test_worker import queue_preview, sql


async def test_runtimes_lists_the_python_runtime(api: httpx.AsyncClient) -> None:
    runtimes = (await api.get("/runtimes")).json()
    python = next(r for r in runtimes if r["name"] == "python3")
    assert python["aliases"] == ["python", "py"]
    assert python["file_extensions"] == [".py"]
    assert python["plugin"].startswith("gristmill-python ")
    assert python["available"] is True and python["toolchain_version"].startswith("3.")
    assert "def main(" in python["template"]


async def test_keep_job_dir_keeps_the_job_files(settings: Settings) -> None:
    for keep in (True, False):
        async with started(settings.with_overrides(keep_job_dir=keep)) as api:
            r = await api.post(
                "/w/main/jobs/run_wait_result/preview",
                json={
                    "content": "def main(a: int):\n    return a\n",
                    "language": "python3",
                    "args": {"a": 4},
                },
            )
            job_dir = settings.jobs_dir / r.headers["x-job-id"]
            await asyncio.sleep(0.2)  # removal happens just after the result is recorded
            if keep:
                assert json.loads((job_dir / "args.json").read_text()) == {"a": 4}
                assert (job_dir / "result.json").read_text() == "4"
                assert (job_dir / "main.py").exists()
            else:
                assert not job_dir.exists()


async def test_idle_workers_poll_when_no_notification_comes(settings: Settings) -> None:
    """SLEEP_QUEUE is the fallback: a job queued without notification is still found."""
    async with started(settings.with_overrides(sleep_queue_ms=200, num_workers=1)) as api:
        job_id = uuid.uuid4()
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            # What a server whose notification got lost leaves behind.
            conn.execute(
                "INSERT INTO job (id, workspace_id, kind, language, raw_code, args, tag,"
                " created_by, permissioned_as, email) VALUES (%s, 'main', 'preview', 'python3',"
                " 'def main():\n    return 5\n', '{}', 'python3', 'admin', 'u/admin', 'a@b')",
                (job_id,),
            )
            conn.execute(
                "INSERT INTO job_queue (id, workspace_id, tag) VALUES (%s, 'main', 'python3')",
                (job_id,),
            )
        started_at = time.monotonic()
        assert (await completed(api, str(job_id)))["result"] == 5
        assert time.monotonic() - started_at < 3


async def test_num_workers_run_jobs_side_by_side(settings: Settings) -> None:
    async with started(settings.with_overrides(num_workers=3)) as api:
        code = "import time\ndef main():\n    time.sleep(1.5)\n    return 1\n"
        begin = time.monotonic()
        ids = [
            (
                await api.post(
                    "/w/main/jobs/run/preview", json={"content": code, "language": "python3"}
                )
            ).text
            for _ in range(3)
        ]
        for job_id in ids:
            await completed(api, job_id)
        assert time.monotonic() - begin < 4, "three workers run three jobs at once"
    workers = sql(settings, "SELECT count(DISTINCT worker) FROM job_completed")
    assert workers == [(3,)]


async def test_heartbeats_keep_a_running_job_alive(settings: Settings) -> None:
    async with started(settings.with_overrides(heartbeat_s=0.2)) as api:
        job_id = await queue_preview(settings, "import time\ndef main():\n    time.sleep(1.5)\n")

        async def ping() -> object:
            rows = sql(settings, "SELECT ping FROM job_queue WHERE id = %s AND running", job_id)
            return rows[0][0] if rows else None

        first = None
        deadline = time.monotonic() + 10
        while first is None and time.monotonic() < deadline:
            first = await ping()
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.6)
        later = await ping()
        assert first is not None and later is not None and later > first
        await completed(api, str(job_id))


def test_json_fmt_writes_json_log_lines(settings: Settings, capsys: object) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(settings.with_overrides(json_fmt=True))
        logging.getLogger("gristmill.test").warning("hello %s", "there")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    entry = json.loads(err.strip().splitlines()[-1])
    assert entry["message"] == "hello there" and entry["level"] == "WARNING"
    assert entry["target"] == "gristmill.test" and "timestamp" in entry
