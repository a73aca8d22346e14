"""Idempotent submission (docs/reliability.md): a run request repeated with its ``job_id`` or
its ``Idempotency-Key`` header gets the job of the first one, never a second job and never an
error, when it matches it; a precise 409 when it does not. Real Postgres and workers, one
platform for the module, a workspace per test."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from gristmill.api.app import create_app
from gristmill.auth.tokens import create_api_token
from gristmill.db.queries import Q
from gristmill.queue.enqueue import NewJob, push_job
from gristmill.queue.idempotency import AlreadySubmitted
from gristmill.queue.states import JobKind
from gristmill.server.platform import Platform

#: A fresh value on each run: an answer given twice by one run is told apart from two runs.
FRESH = "import uuid\ndef main(x: int):\n    return {'x': x, 'r': uuid.uuid4().hex}\n"
OTHER = "def main(x: int):\n    return x\n"
SLOW = (
    "import time, uuid\ndef main(x: int):\n    time.sleep(1)\n"
    "    return {'x': x, 'r': uuid.uuid4().hex}\n"
)


@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


async def save(api: httpx.AsyncClient, workspace: str, path: str, content: str = FRESH) -> None:
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": path, "content": content, "language": "python3"},
    )
    assert r.status_code == 201, r.text


async def count_jobs(platform: Platform, workspace: str) -> int:
    async with platform.db.connection() as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM job WHERE workspace_id = %s", (workspace,))
        ).fetchone()
    assert row is not None
    return int(row[0])


async def result(api: httpx.AsyncClient, workspace: str, job_id: str) -> Any:
    for _ in range(300):
        r = await api.get(f"/w/{workspace}/jobs_u/completed/get_result_maybe/{job_id}")
        assert r.status_code == 200, r.text
        if r.json()["completed"]:
            return r.json()["result"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not complete")


async def member_client(platform: Platform, workspace: str, name: str) -> httpx.AsyncClient:
    """An API client as a new developer of ``workspace``."""
    email = f"{name}@example.com"
    async with platform.db.connection() as conn:
        await conn.execute(
            Q["insert_user"],
            {"email": email, "username": name, "password_hash": None, "super_admin": False},
        )
        await conn.execute(
            Q["add_member"],
            {"workspace_id": workspace, "email": email, "role": "developer", "added_by": "t"},
        )
        token = await create_api_token(
            conn, email=email, label="test", expiration=None, scopes=None
        )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(platform)),
        base_url="http://gristmill.test/api",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"order-{uuid.uuid4()}"}


async def test_the_same_job_id_twice_is_one_job_with_one_answer(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/fresh")
    job_id = str(uuid.uuid4())
    run = f"/w/{workspace}/jobs/run/p/u/admin/fresh"
    first = await api.post(run, json={"x": 1}, params={"job_id": job_id})
    assert first.status_code == 201 and first.text == job_id, first.text
    again = await api.post(run, json={"x": 1}, params={"job_id": job_id})
    assert (again.status_code, again.text) == (201, job_id)
    answer = await result(api, workspace, job_id)
    # The synchronous route with the same id: the first run's result, read back, not re-run.
    waited = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/p/u/admin/fresh",
        json={"x": 1},
        params={"job_id": job_id},
    )
    assert waited.status_code == 200 and waited.json() == answer, waited.text
    assert waited.headers["x-job-id"] == job_id
    # A preview repeated with its id, too.
    preview_id = str(uuid.uuid4())
    body = {"content": FRESH, "language": "python3", "args": {"x": 2}}
    for _ in range(2):
        r = await api.post(
            f"/w/{workspace}/jobs/run/preview", json=body, params={"job_id": preview_id}
        )
        assert (r.status_code, r.text) == (201, preview_id)
    await result(api, workspace, preview_id)
    assert await count_jobs(platform, workspace) == 2


async def test_an_idempotency_key_on_run_wait_result_gives_the_first_result(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/fresh")
    headers = key()
    url = f"/w/{workspace}/jobs/run_wait_result/p/u/admin/fresh"
    first = await api.post(url, json={"x": 3}, headers=headers)
    assert first.status_code == 200, first.text
    again = await api.post(url, json={"x": 3}, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["x-job-id"] == first.headers["x-job-id"]
    # The asynchronous route with the key names the same job.
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/fresh", json={"x": 3}, headers=headers)
    assert (r.status_code, r.text) == (201, first.headers["x-job-id"])
    assert await count_jobs(platform, workspace) == 1


async def test_a_client_that_gave_up_waiting_retries_and_gets_the_running_job(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/slow", SLOW)
    headers = key()
    url = f"/w/{workspace}/jobs/run_wait_result/p/u/admin/slow"
    # The client's time-out: its first request is abandoned while the job runs.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(api.post(url, json={"x": 1}, headers=headers), 0.3)
    retried = await api.post(url, json={"x": 1}, headers=headers)
    assert retried.status_code == 200 and retried.json()["x"] == 1, retried.text
    assert await count_jobs(platform, workspace) == 1
    # Once finished, a retry reads the same result back.
    again = await api.post(url, json={"x": 1}, headers=headers)
    assert again.json() == retried.json()


async def test_a_repeat_that_does_not_match_its_job_is_a_precise_409(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/fresh")
    await save(api, workspace, "u/admin/other", OTHER)
    headers = key()
    run = f"/w/{workspace}/jobs/run/p/u/admin/fresh"
    job_id = (await api.post(run, json={"x": 1}, headers=headers)).text
    r = await api.post(run, json={"x": 2}, headers=headers)
    assert r.status_code == 409, r.text
    assert job_id in r.text and "arguments differ (x)" in r.text, r.text
    r = await api.post(f"/w/{workspace}/jobs/run/p/u/admin/other", json={"x": 1}, headers=headers)
    assert r.status_code == 409 and "it runs u/admin/fresh, this request u/admin/other" in r.text
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview",
        json={"content": FRESH, "language": "python3", "args": {"x": 1}},
        headers=headers,
    )
    assert r.status_code == 409 and "it is a script job, this request a preview" in r.text
    # By job_id: the same answers, naming the id.
    r = await api.post(run, json={"x": 5}, params={"job_id": job_id})
    assert r.status_code == 409 and f"a job with id {job_id} already exists" in r.text, r.text
    # A job_id and a key naming two different jobs.
    other = (await api.post(run, json={"x": 1})).text
    r = await api.post(run, json={"x": 1}, params={"job_id": other}, headers=headers)
    assert r.status_code == 409 and "name two different jobs" in r.text, r.text
    # Keys that cannot be one: 400.
    for bad in (" ", "k" * 256):
        r = await api.post(run, json={"x": 1}, headers={"Idempotency-Key": bad})
        assert r.status_code == 400 and "Idempotency-Key" in r.text, r.text
    assert await count_jobs(platform, workspace) == 2


async def test_concurrent_requests_with_one_key_make_one_job(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/fresh")
    headers = key()
    answers = await asyncio.gather(
        *(
            api.post(f"/w/{workspace}/jobs/run/p/u/admin/fresh", json={"x": 7}, headers=headers)
            for _ in range(8)
        )
    )
    assert {(r.status_code, r.text) for r in answers} == {(201, answers[0].text)}
    headers = key()
    waited = await asyncio.gather(
        *(
            api.post(
                f"/w/{workspace}/jobs/run_wait_result/p/u/admin/fresh",
                json={"x": 8},
                headers=headers,
            )
            for _ in range(4)
        )
    )
    assert all(r.status_code == 200 for r in waited), [r.text for r in waited]
    assert len({r.text for r in waited}) == 1 and len({r.headers["x-job-id"] for r in waited}) == 1
    assert await count_jobs(platform, workspace) == 2


async def test_keys_and_ids_are_scoped_per_workspace(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    other_ws = f"t-{uuid.uuid4().hex[:12]}"
    r = await api.post("/workspaces/create", json={"id": other_ws, "name": other_ws})
    assert r.status_code == 201, r.text
    for ws in (workspace, other_ws):
        await save(api, ws, "u/admin/fresh")
    headers = key()
    ids = [
        (await api.post(f"/w/{ws}/jobs/run/p/u/admin/fresh", json={"x": 1}, headers=headers)).text
        for ws in (workspace, other_ws)
    ]
    assert ids[0] != ids[1]
    assert await count_jobs(platform, workspace) == await count_jobs(platform, other_ws) == 1
    # A job id is global: taken in another workspace, it is refused without a word about the job.
    r = await api.post(
        f"/w/{other_ws}/jobs/run/p/u/admin/fresh", json={"x": 1}, params={"job_id": ids[0]}
    )
    assert r.status_code == 409 and "choose another job_id" in r.text, r.text
    assert "u/admin" not in r.text
    # Another user of the workspace reusing a key: refused, the job not described.
    preview = {"content": OTHER, "language": "python3", "args": {"x": 1}}
    r = await api.post(f"/w/{workspace}/jobs/run/preview", json=preview, headers=headers)
    assert r.status_code == 409, r.text  # the key names the script run above
    headers = key()
    mine = await api.post(f"/w/{workspace}/jobs/run/preview", json=preview, headers=headers)
    assert mine.status_code == 201, mine.text
    async with await member_client(platform, workspace, f"bob{uuid.uuid4().hex[:6]}") as bob:
        r = await bob.post(f"/w/{workspace}/jobs/run/preview", json=preview, headers=headers)
    assert r.status_code == 409 and "another user's run" in r.text, r.text
    assert mine.text not in r.text


async def test_flows_and_http_routes_take_a_key(
    api: httpx.AsyncClient, platform: Platform, workspace: str
) -> None:
    await save(api, workspace, "u/admin/fresh")
    flow = {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "script",
                    "path": "u/admin/fresh",
                    "input_transforms": {"x": {"type": "javascript", "expr": "flow_input.x"}},
                },
            }
        ]
    }
    r = await api.post(
        f"/w/{workspace}/flows/create",
        json={"path": "u/admin/flow", "summary": "", "value": flow, "schema": {}},
    )
    assert r.status_code == 201, r.text
    headers = key()
    url = f"/w/{workspace}/jobs/run_wait_result/f/u/admin/flow"
    first = await api.post(url, json={"x": 4}, headers=headers)
    assert first.status_code == 200, first.text
    again = await api.post(url, json={"x": 4}, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    r = await api.post(f"/w/{workspace}/jobs/run/f/u/admin/flow", json={"x": 5}, headers=headers)
    assert r.status_code == 409 and "arguments differ (x)" in r.text, r.text
    preview = {"value": flow, "args": {"x": 6}}
    headers = key()
    ids = {
        (
            await api.post(f"/w/{workspace}/jobs/run/preview_flow", json=preview, headers=headers)
        ).text
        for _ in range(2)
    }
    assert len(ids) == 1
    # HTTP routes, async and sync: a retried call gets the job (or result) of the first.
    answers: dict[str, list[httpx.Response]] = {}
    for request_type in ("async", "sync"):
        route = f"idem{uuid.uuid4().hex[:8]}"
        r = await api.post(
            f"/w/{workspace}/http_triggers/create",
            json={
                "path": f"u/admin/route_{route}",
                "script_path": "u/admin/fresh",
                "route_path": route,
                "http_method": "post",
                "is_flow": False,
                "request_type": request_type,
            },
        )
        assert r.status_code == 201, r.text
        headers = key()
        calls = answers[request_type] = []
        for _ in range(2):
            for _ in range(100):  # the route table learns of the route within moments
                r = await api.post(f"/r/{route}", json={"x": 9}, headers=headers)
                if not (r.status_code == 404 and "no HTTP route" in r.text):
                    break
                await asyncio.sleep(0.05)
            calls.append(r)
    calls = answers["async"]
    assert [c.status_code for c in calls] == [201, 201] and calls[0].text == calls[1].text
    synced = answers["sync"]
    assert [c.status_code for c in synced] == [200, 200] and synced[0].json() == synced[1].json()
    # A run route called with an API token is a webhook: it records so, and takes a key too.
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{calls[0].text}")).json()
    assert job["trigger_kind"] == "http"
    headers = key()
    hooks = [
        await api.post(f"/w/{workspace}/jobs/run/p/u/admin/fresh", json={"x": 1}, headers=headers)
        for _ in range(2)
    ]
    assert hooks[0].text == hooks[1].text
    job = (await api.get(f"/w/{workspace}/jobs_u/get/{hooks[0].text}")).json()
    assert job["trigger_kind"] == "webhook"
    # flow run + flow preview + their steps, the routes' jobs, the webhook's job.
    assert await count_jobs(platform, workspace) == 7


async def test_a_retry_racing_the_first_insert_waits_for_it_and_gets_its_job(
    platform: Platform, workspace: str
) -> None:
    """The unique index, not a read before the insert, decides: a second push of a key whose
    first insert is not committed yet waits for it, then inserts nothing and names its job."""
    run_key = f"race-{uuid.uuid4()}"

    def job() -> NewJob:
        return NewJob(
            workspace_id=workspace,
            kind=JobKind.PREVIEW,
            tag="nowhere",  # no worker takes it: the rows stay as pushed
            args={"x": 1},
            created_by="admin",
            permissioned_as="u/admin",
            email="admin@example.com",
            raw_code=OTHER,
            language="python3",
            idempotency_key=run_key,
        )

    first = job()
    async with platform.db.connection() as a, platform.db.connection() as b:
        async with a.transaction():
            assert await push_job(a, first) == first.id
            second = asyncio.create_task(push_job(b, job()))
            await asyncio.sleep(0.3)
            assert not second.done()  # held by the first insert's row lock on the key
        with pytest.raises(AlreadySubmitted) as repeated:
            await second
    assert repeated.value.job_id == first.id
    assert await count_jobs(platform, workspace) == 1
