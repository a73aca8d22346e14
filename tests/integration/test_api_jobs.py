"""Running jobs through the REST API: real Postgres, real workers, real Python processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gristmill.api.app import create_app
from gristmill.config import Settings
from gristmill.queue.claim import Claim, SecretsRead, claim_job, complete_job
from gristmill.queue.enqueue import NewJob, push_job
from gristmill.queue.states import JobKind, JobStatus
from gristmill.queue.trace import TRACE
from gristmill.server.platform import Platform, prepare_database
from gristmill.testing.pytest_plugin import SUPERADMIN_SECRET, shared_runtimes
from gristmill.testing.waiting import wait_until


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py): they save the same paths and list a workspace's jobs. Tests that need
# settings of their own start a platform with them (`started`).
@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


ECHO = "def main(x: int, label: str = 'n'):\n    print('got', x)\n    return {label: x * 2}\n"


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A platform with these settings, and a client on its API."""
    prepared = await asyncio.to_thread(prepare_database, settings.database_url)
    platform = Platform(
        settings=settings,
        conninfo=settings.database_url,
        job_token_secret=prepared.job_token_secret,
        **shared_runtimes(),
    )
    await platform.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(platform)),
            base_url="http://gristmill.test/api",
            headers={"Authorization": f"Bearer {SUPERADMIN_SECRET}"},
            timeout=60,
        ) as client:
            yield client
    finally:
        await platform.stop()


async def save(
    api: httpx.AsyncClient, path: str, content: str, *, workspace: str = "main", **extra: Any
) -> str:
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": path, "content": content, "language": "python3", **extra},
    )
    assert r.status_code == 201, r.text
    return r.text


async def completed(
    api: httpx.AsyncClient, job_id: str, *, workspace: str = "main"
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")
        if response.status_code == 503:
            # The database was unreachable for that request (a test cutting connections):
            # the API says to retry, as a client does.
            assert response.text.startswith("Service unavailable"), response.text
            return None
        r = response.json()
        return r if r["completed"] else None

    return await wait_until(check)


async def test_run_wait_result_returns_the_result(api: httpx.AsyncClient, workspace: str) -> None:
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo", json={"x": 21})
    assert r.status_code == 200, r.text
    assert r.json() == {"n": 42}
    job_id = r.headers["x-job-id"]
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")).json()
    assert job["type"] == "CompletedJob" and job["success"] is True
    assert job["script_path"] == "u/admin/echo" and job["args"] == {"x": 21}
    assert job["result"] == {"n": 42}
    assert "got 21" in job["logs"]


async def test_traced_jobs_record_each_phase_of_their_path(
    api: httpx.AsyncClient, workspace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With GRISTMILL_TRACE_JOBS (benchmarks/breakdown.py), a synchronous run records its
    phases in order, read back once through the debug route; off, the route is absent."""
    monkeypatch.setattr(TRACE, "enabled", False)
    assert (await api.get(f"/w/{workspace}/jobs/trace")).status_code == 404
    monkeypatch.setattr(TRACE, "enabled", True)
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo", json={"x": 1})
    assert r.status_code == 200, r.text
    traces = (await api.get(f"/w/{workspace}/jobs/trace")).json()
    marks = traces[r.headers["x-job-id"]]
    phases = [phase for phase, _ in marks]
    # "handed": given to an idle worker of this process (else claimed from the queue).
    # "recorded" (the worker has its statement's answer) may come before or after
    # "notified" (the waiter resolved, often by the commit's notification, first).
    expected = [
        "received", "validated", "inserted", "handed", "claimed", "prepared", "prepare",
        "run", "collected", "notified", "woken", "responded",
    ]  # fmt: skip
    if "handed" not in phases:
        expected.remove("handed")
    assert [p for p in phases if p in expected] == expected
    times = [at for phase, at in marks if phase in expected]
    assert times == sorted(times)
    at = dict(marks)
    assert at["collected"] < at["recorded"] and phases.count("recorded") == 1
    assert (await api.get(f"/w/{workspace}/jobs/trace")).json() == {}


async def test_async_run_then_state_logs_and_result(api: httpx.AsyncClient, workspace: str) -> None:
    hash_ = await save(api, "u/admin/echo", ECHO, workspace=workspace)
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 1, "label": "a"})
    assert r.status_code == 201
    job_id = str(uuid.UUID(r.text))
    outcome = await completed(api, job_id, workspace=workspace)
    assert outcome == {"completed": True, "started": True, "success": True, "result": {"a": 2}}
    assert (await api.get(f"/w/{workspace}/jobs_u/completed/get_result/{job_id}")).json() == {
        "a": 2
    }
    assert (await api.get(f"/w/{workspace}/jobs_u/get_logs/{job_id}")).text == "got 1\n"
    update = (
        await api.get(f"/w/{workspace}/jobs_u/getupdate/{job_id}", params={"log_offset": 2})
    ).json()
    assert update["completed"] is True and update["running"] is False
    assert update["new_logs"] == "t 1\n" and update["log_offset"] == 6
    by_hash = await api.post(f"/w/{workspace}/jobs/run_wait_result/h/{hash_}", json={"x": 5})
    assert by_hash.json() == {"n": 10}


async def test_failure_is_422_with_the_error_object(api: httpx.AsyncClient, workspace: str) -> None:
    await save(
        api, "u/admin/boom", "def main():\n    raise ValueError('bad value')\n", workspace=workspace
    )
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/boom", json={})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["name"] == "ValueError" and error["message"] == "bad value"
    assert "main.py" in error["stack"] and "wrapper.py" not in error["stack"].splitlines()[1]
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{r.headers['x-job-id']}")).json()
    assert job["success"] is False and job["status"] == "failure"


async def test_arguments_are_checked_against_the_schema(
    api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    cases = [
        ({"x": "abc"}, "argument 'x': expected an integer, got a string ('abc')"),
        ({}, "argument 'x': missing required argument"),
        ({"x": 1, "lable": "typo"}, "argument 'lable': unknown argument"),
    ]
    for args, message in cases:
        r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo", json=args)
        assert r.status_code == 400, r.text
        assert message in r.text
    listed = (await api.get(f"/w/{workspace}/jobs/list")).json()
    assert listed == [], "a refused run must not leave a job behind"


async def test_bodies_that_are_not_objects_or_not_json(
    api: httpx.AsyncClient, workspace: str
) -> None:
    await save(
        api, "u/admin/body", "def main(body: list):\n    return len(body)\n", workspace=workspace
    )
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/body", json=[1, 2, 3])
    assert r.json() == 3
    r = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/body",
        content=b"[1, 2",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "not valid JSON" in r.text


async def test_unknown_path_is_404(api: httpx.AsyncClient, workspace: str) -> None:
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/missing", json={})
    assert r.status_code == 404
    assert r.text == "Not found: Script not found at name u/admin/missing"


async def test_preview_runs_code_and_rejects_bad_code(
    api: httpx.AsyncClient, workspace: str
) -> None:
    body = {
        "content": "def main(a: float):\n    return a / 2\n",
        "language": "python",
        "args": {"a": 3},
    }
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/preview", json=body)
    assert r.status_code == 200 and r.json() == 1.5
    bad = {**body, "content": "def main(a):\n  return (a\n"}
    r = await api.post(f"/w/{workspace}/jobs/run/preview", json=bad)
    assert r.status_code == 400 and "line 2" in r.text
    r = await api.post(f"/w/{workspace}/jobs/run/preview", json={**body, "language": "cobol"})
    assert r.status_code == 400 and "unknown language" in r.text


async def test_typed_arguments_reach_main_converted(api: httpx.AsyncClient, workspace: str) -> None:
    code = (
        "import datetime\n"
        "def main(raw: bytes, when: datetime.datetime, day: datetime.date, n: int = 7):\n"
        "    return [raw.decode(), when.isoformat(), day.isoformat(), n, type(when).__name__]\n"
    )
    args = {"raw": "aGVsbG8=", "when": "2024-05-01T10:00:00Z", "day": "2024-05-02", "n": None}
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/preview",
        json={"content": code, "language": "python3", "args": args},
    )
    assert r.status_code == 200, r.text
    assert r.json() == ["hello", "2024-05-01T10:00:00+00:00", "2024-05-02", 7, "datetime"]


async def test_logs_stream_while_the_job_runs(api: httpx.AsyncClient, workspace: str) -> None:
    code = "import time\ndef main():\n    print('first', flush=True)\n    time.sleep(2)\n    print('second')\n"
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview", json={"content": code, "language": "python3"}
    )
    job_id = r.text

    async def first_line_seen() -> dict[str, Any] | None:
        update = (await api.get(f"/w/{workspace}/jobs_u/getupdate/{job_id}")).json()
        return update if "first" in update["new_logs"] else None

    update = await wait_until(first_line_seen, timeout=10)
    assert update["running"] is True and update["completed"] is False
    assert "second" not in update["new_logs"]
    await completed(api, job_id, workspace=workspace)
    assert (await api.get(f"/w/{workspace}/jobs_u/get_logs/{job_id}")).text == "first\nsecond\n"


async def test_cancel_a_queued_job(api: httpx.AsyncClient, workspace: str) -> None:
    """A job for a tag no worker takes stays queued; cancelling moves it to the history."""
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    r = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 1}, params={"tag": "nobody"}
    )
    job_id = r.text
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")).json()
    assert job["type"] == "QueuedJob" and job["running"] is False and job["tag"] == "nobody"
    r = await api.post(
        f"/w/{workspace}/jobs_u/queue/cancel/{job_id}", json={"reason": "not needed"}
    )
    assert r.status_code == 200 and r.text == job_id
    outcome = (await api.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")).json()
    assert outcome["success"] is False
    assert outcome["result"]["error"] == {
        "name": "Canceled",
        "message": "Job canceled: not needed by superadmin_secret",
        "reason": "not needed",
        "canceler": "superadmin_secret",
    }
    again = await api.post(f"/w/{workspace}/jobs_u/queue/cancel/{job_id}", json={})
    assert again.status_code == 400 and "already completed" in again.text
    missing = await api.post(f"/w/{workspace}/jobs_u/queue/cancel/{uuid.uuid4()}", json={})
    assert missing.status_code == 404


async def test_cancel_a_running_job_kills_its_process_group(
    api: httpx.AsyncClient, workspace: str
) -> None:
    # A duration no other process uses: the child is found on the host by its command line
    # (inside the sandbox its pid is its PID namespace's).
    duration = f"300.{uuid.uuid4().int % 10**8:08d}"
    code = (
        "import subprocess, time\n"
        "def main():\n"
        f"    child = subprocess.Popen(['sleep', '{duration}'])\n"
        "    print('child started', flush=True)\n"
        "    time.sleep(300)\n"
    )
    job_id = (
        await api.post(
            f"/w/{workspace}/jobs/run/preview", json={"content": code, "language": "python3"}
        )
    ).text

    async def child_pid() -> int | None:
        logs = (await api.get(f"/w/{workspace}/jobs_u/get_logs/{job_id}")).text
        if not logs.startswith("child"):
            return None
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if entry.name.isdigit() and cmdline == f"sleep\0{duration}\0".encode():
                return int(entry.name)
        return None

    pid = await wait_until(child_pid, timeout=15)
    assert os.path.exists(f"/proc/{pid}")
    started = time.monotonic()
    r = await api.post(f"/w/{workspace}/jobs/queue/cancel/{job_id}", json={"reason": "stop"})
    assert r.status_code == 200
    outcome = await completed(api, job_id, workspace=workspace)
    assert time.monotonic() - started < 10
    assert outcome["result"]["error"]["name"] == "Canceled"
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")).json()
    assert job["status"] == "canceled" and job["canceled_by"] == "superadmin_secret"

    async def child_gone() -> bool:
        try:
            state = open(f"/proc/{pid}/stat").read().split()[2]
        except FileNotFoundError:
            return True
        return state == "Z"

    await wait_until(child_gone, timeout=5)


async def test_a_job_over_its_timeout_is_killed(api: httpx.AsyncClient, workspace: str) -> None:
    await save(
        api,
        "u/admin/slow",
        "import time\ndef main():\n    time.sleep(30)\n",
        timeout=1,
        workspace=workspace,
    )
    started = time.monotonic()
    r = await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/slow", json={})
    assert time.monotonic() - started < 10
    assert r.status_code == 422
    assert "timed out after 1 s" in r.json()["error"]["message"]


async def test_a_job_scheduled_for_later_waits(api: httpx.AsyncClient, workspace: str) -> None:
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    r = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo",
        json={"x": 2},
        params={"scheduled_for": when.isoformat()},
    )
    job_id = r.text
    await asyncio.sleep(0.5)
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")).json()
    assert job["type"] == "QueuedJob" and job["running"] is False
    outcome = await completed(api, job_id, workspace=workspace)
    assert outcome["result"] == {"n": 4}
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")).json()
    assert dt.datetime.fromisoformat(job["started_at"]) >= when - dt.timedelta(milliseconds=50)


async def test_a_claim_takes_a_due_job_or_says_when_the_next_is_due(
    module_platform: Platform, workspace: str
) -> None:
    """The workers' one statement: a due job of the tags, or (none due) when the earliest
    job scheduled for later becomes due, which the worker sleeps until."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    tag_later, tag_now = f"later-{workspace}", f"now-{workspace}"  # tags no worker takes

    def job(tag: str, scheduled_for: dt.datetime | None = None) -> NewJob:
        return NewJob(
            workspace_id=workspace,
            kind=JobKind.PREVIEW,
            tag=tag,
            args={},
            created_by="admin",
            permissioned_as="u/admin",
            email="admin@windmill.dev",
            language="python3",
            raw_code="def main():\n    return 1\n",
            scheduled_for=scheduled_for,
        )

    async with module_platform.db.connection() as conn:
        assert await claim_job(conn, [tag_later], "claim-test") == Claim(None, None)
        await push_job(conn, job(tag_later, later))
        claim = await claim_job(conn, [tag_later], "claim-test")
        assert claim.job is None and claim.next_due == later
        due = job(tag_now)
        await push_job(conn, due)
        claim = await claim_job(conn, [tag_now, tag_later], "claim-test")
        assert claim.next_due is None and claim.job is not None
        assert claim.job["id"] == due.id and claim.job["code"] == due.raw_code
        assert "next_due" not in claim.job
        completion = functools.partial(
            complete_job,
            conn,
            job_id=due.id,
            worker="claim-test",
            status=JobStatus.SUCCESS,
            result_json="1",
            log_offset=0,
        )
        # A log left unmasked is written only if the job read no secret: here it read one,
        # so nothing is written, and the worker completes again with the log masked.
        await conn.execute(
            "INSERT INTO job_secret_read (job_id, path) VALUES (%s, 'u/admin/s')", (due.id,)
        )
        with pytest.raises(SecretsRead):
            await completion(logs="raw", unmasked=True)
        assert await completion(logs="masked")
        assert not await completion(logs="again")  # no longer held: nothing written
        rows = await (
            await conn.execute("SELECT content FROM job_log WHERE job_id = %s", (due.id,))
        ).fetchall()
        assert rows == [("masked",)]


async def test_list_jobs_with_filters(api: httpx.AsyncClient, workspace: str) -> None:
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    await api.post(f"/w/{workspace}/folders/create", json={"name": "team"})  # f/ paths need it
    await save(
        api, "f/team/boom", "def main():\n    raise RuntimeError('x')\n", workspace=workspace
    )
    await api.post(f"/w/{workspace}/jobs/run_wait_result/p/u/admin/echo", json={"x": 1})
    await api.post(f"/w/{workspace}/jobs/run_wait_result/p/f/team/boom", json={})
    queued = (
        await api.post(
            f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 1}, params={"tag": "none"}
        )
    ).text
    everything = (await api.get(f"/w/{workspace}/jobs/list")).json()
    assert len(everything) == 3 and everything[0]["id"] == queued
    assert everything[0]["type"] == "QueuedJob"
    ok = (await api.get(f"/w/{workspace}/jobs/list", params={"success": "true"})).json()
    assert [j["script_path"] for j in ok] == ["u/admin/echo"]
    failed = (
        await api.get(f"/w/{workspace}/jobs/completed/list", params={"success": "false"})
    ).json()
    assert [j["script_path"] for j in failed] == ["f/team/boom"]
    by_path = (
        await api.get(f"/w/{workspace}/jobs/list", params={"script_path_start": "f/"})
    ).json()
    assert [j["script_path"] for j in by_path] == ["f/team/boom"]
    only_queue = (await api.get(f"/w/{workspace}/jobs/queue/list")).json()
    assert [j["id"] for j in only_queue] == [queued]
    r = await api.get(f"/w/{workspace}/jobs/list", params={"running": "true", "success": "true"})
    assert r.status_code == 400


async def test_wait_result_timeout_leaves_the_job_running(settings: Settings) -> None:
    async with started(settings.with_overrides(timeout_wait_result_s=0.5)) as api:
        code = "import time\ndef main():\n    time.sleep(2)\n    return 'late'\n"
        r = await api.post(
            "/w/main/jobs/run_wait_result/preview", json={"content": code, "language": "python3"}
        )
        assert r.status_code == 500
        assert r.text.startswith("timeout after 0.5s")
        job_id = r.text.split("job ")[1].split(" ")[0]
        outcome = await completed(api, job_id)
        assert outcome["result"] == "late"


async def test_queue_limit_refuses_synchronous_runs(settings: Settings) -> None:
    async with started(settings.with_overrides(queue_limit_wait_result=1)) as api:
        await save(api, "u/admin/echo", ECHO)
        for _ in range(2):
            await api.post("/w/main/jobs/run/p/u/admin/echo", json={"x": 1}, params={"tag": "none"})
        r = await api.post("/w/main/jobs/run_wait_result/p/u/admin/echo", json={"x": 1})
        assert r.status_code == 503
        assert "Number of queued job is too high: 2 > 1" in r.text


async def test_priority_orders_the_queue(settings: Settings) -> None:
    async with started(settings.with_overrides(num_workers=0)) as api:
        await save(api, "u/admin/low", "def main():\n    return 'low'\n")
        await save(api, "u/admin/high", "def main():\n    return 'high'\n", priority=10)
        low = (await api.post("/w/main/jobs/run/p/u/admin/low", json={})).text
        high = (await api.post("/w/main/jobs/run/p/u/admin/high", json={})).text
    async with started(settings.with_overrides(num_workers=1)) as api:
        first = (await completed(api, high), await completed(api, low))
        assert [o["result"] for o in first] == ["high", "low"]
        jobs = {j["id"]: j for j in (await api.get("/w/main/jobs/list")).json()}
        high_job = (await api.get(f"/w/main/jobs_u/get/{high}")).json()
        low_job = (await api.get(f"/w/main/jobs_u/get/{low}")).json()
        assert set(jobs) == {high, low}
        assert high_job["started_at"] < low_job["started_at"]


@pytest.mark.parametrize("tag_given", [False, True])
async def test_a_worker_only_takes_its_tags(settings: Settings, tag_given: bool) -> None:
    async with started(settings.with_overrides(worker_tags=("other",))) as api:
        params = {"tag": "other"} if tag_given else {}
        r = await api.post(
            "/w/main/jobs/run/preview",
            json={"content": "def main():\n    return 1\n", "language": "python3"},
            params=params,
        )
        job_id = r.text
        if tag_given:
            assert (await completed(api, job_id))["result"] == 1
        else:
            await asyncio.sleep(1.5)
            job = (await api.get(f"/w/main/jobs_u/get/{job_id}")).json()
            assert job["type"] == "QueuedJob" and job["running"] is False


async def test_a_job_id_chosen_by_the_caller_is_used_once(
    api: httpx.AsyncClient, workspace: str
) -> None:
    await save(api, "u/admin/echo", ECHO, workspace=workspace)
    job_id = str(uuid.uuid4())
    r = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 1}, params={"job_id": job_id}
    )
    assert r.status_code == 201 and r.text == job_id
    # A retry gets its job (tests/integration/test_idempotency.py); other arguments a 409.
    again = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 1}, params={"job_id": job_id}
    )
    assert again.status_code == 201 and again.text == job_id
    other = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 2}, params={"job_id": job_id}
    )
    assert other.status_code == 409 and f"a job with id {job_id} already exists" in other.text
    assert (await completed(api, job_id, workspace=workspace))["result"] == {"n": 2}
    bad = await api.post(
        f"/w/{workspace}/jobs/run/p/u/admin/echo", json={"x": 1}, params={"job_id": "nope"}
    )
    assert bad.status_code == 400 and "job_id" in bad.text
