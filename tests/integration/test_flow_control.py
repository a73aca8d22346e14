"""A flow's controls, run for real (Postgres, workers, Python steps): a step's ``timeout``,
``cache_ttl`` on steps and on whole flows, and ``early_return``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from gristmill.queue.waiting import wait_for_completion
from gristmill.server.platform import Platform

#: A fresh value on each run: a step that ran again is told apart from a cached one.
RANDOM = "import uuid\ndef main(n: int):\n    return {'n': n, 'r': uuid.uuid4().hex}\n"
SLOW = "import time\ndef main():\n    time.sleep(30)\n    return 'too late'\n"


# One platform for the module's tests (each keeps to its own paths and jobs).
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


def js(expr: str) -> dict[str, Any]:
    return {"type": "javascript", "expr": expr}


def step(id: str, content: str, **inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": content,
            "input_transforms": inputs,
        },
    }


async def run(api: httpx.AsyncClient, value: dict[str, Any], args: dict[str, Any]) -> Any:
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview_flow", json={"value": value, "args": args}
    )
    assert r.status_code == 200, r.text
    return r


async def get_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    r = await api.get(f"/w/main/jobs_u/get/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_until(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_step_timeout_then_retry_and_failure_module_and_as_expression(
    api: httpx.AsyncClient,
) -> None:
    value = {
        "modules": [
            {
                **step("slow", SLOW),
                "timeout": 1,
                "retry": {"constant": {"attempts": 1, "seconds": 0}},
            },
            step("never", RANDOM, n=js("1")),
        ],
        "failure_module": step(
            "failure",
            "def main(message: str):\n    return {'handled': message}\n",
            message=js("error.message"),
        ),
    }
    started = time.monotonic()
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview_flow", json={"value": value, "args": {}}
    )
    assert r.status_code == 422, r.text
    assert "timed out after 1 s" in r.json()["handled"]
    assert time.monotonic() - started < 15  # two attempts of 1 s, not 30
    job = await get_job(api, r.headers["x-job-id"])
    status = job["flow_status"]
    assert len(status["modules"][0]["failed_retries"]) == 1
    assert status["modules"][1]["type"] == "WaitingForPriorSteps"
    assert status["failure_module"]["type"] == "Success"

    # The timeout as an expression, and one that is no number of seconds.
    value = {
        "modules": [
            {**step("quick", RANDOM, n=js("flow_input.n")), "timeout": js("flow_input.t")},
        ]
    }
    r = await run(api, value, {"n": 1, "t": 5})
    assert r.json()["n"] == 1
    bad = await api.post(
        "/w/main/jobs/run_wait_result/preview_flow",
        json={"value": value, "args": {"n": 1, "t": "soon"}},
    )
    assert bad.status_code == 422, bad.text
    message = bad.json()["error"]["message"]
    assert message == 'step "quick" timeout: must be a positive number of seconds, not "soon"'


async def test_cached_step_cached_flow_and_expiry(api: httpx.AsyncClient) -> None:
    value = {
        "modules": [
            {**step("a", RANDOM, n=js("flow_input.n")), "cache_ttl": 60},
            step("b", RANDOM, n=js("results.a.n + 1")),
        ]
    }
    first = await run(api, value, {"n": 1})
    second = await run(api, value, {"n": 1})
    other = await run(api, value, {"n": 2})
    results = []
    for r in (first, second, other):
        job = await get_job(api, r.headers["x-job-id"])
        results.append(job["flow_status"]["modules"][0]["job"])
        assert job["success"] is True
    a_first, a_second, a_other = [await get_job(api, j) for j in results]
    # "a" ran once for n=1: the second run reused its result; "b" ran each time.
    assert a_second["result"] == a_first["result"]
    assert a_other["result"] != a_first["result"] and a_other["result"]["n"] == 2
    assert first.json() != second.json()
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{a_second['id']}")).text
    assert "result reused from the cache" in logs and a_first["id"] in logs

    # A whole flow with cache_ttl: the same flow and args give the same result, no step runs.
    cached_flow = {"modules": [step("c", RANDOM, n=js("flow_input.n"))], "cache_ttl": 60}
    one = await run(api, cached_flow, {"n": 5})
    two = await run(api, cached_flow, {"n": 5})
    three = await run(api, cached_flow, {"n": 6})
    assert one.json() == two.json() and three.json() != one.json()
    children = (await api.get(f"/w/main/jobs/list?parent_job={two.headers['x-job-id']}")).json()
    assert children == []

    # A ttl of 1 s: reused at once, run again once it has expired.
    value = {"modules": [{**step("a", RANDOM, n=js("flow_input.n")), "cache_ttl": 1}]}
    first = (await run(api, value, {"n": 7})).json()
    assert (await run(api, value, {"n": 7})).json() == first

    async def changed() -> bool:
        return (await run(api, value, {"n": 7})).json() != first

    started = time.monotonic()
    await wait_until(changed, timeout=10)
    assert time.monotonic() - started >= 0.2  # not before its ttl


async def test_early_return(api: httpx.AsyncClient, platform: Platform) -> None:
    value = {
        "modules": [
            step("a", RANDOM, n=js("flow_input.n")),
            step("b", "import time\ndef main():\n    time.sleep(2)\n    return 'final'\n"),
        ],
        "early_return": "a",
    }
    r = await run(api, value, {"n": 3})
    early = r.json()
    assert early["n"] == 3
    flow_id = r.headers["x-job-id"]
    job = await get_job(api, flow_id)
    assert job["type"] == "QueuedJob"  # "b" still runs
    # A waiter arriving after the early result gets it too (stored, not only notified).
    assert platform.pool is not None and platform.notifier is not None
    done = await wait_for_completion(
        platform.pool, platform.notifier, "main", uuid.UUID(flow_id), 5
    )
    assert done.status == "success" and json.loads(done.result) == early

    async def completed() -> dict[str, Any] | None:
        job = await get_job(api, flow_id)
        return job if job["type"] == "CompletedJob" else None

    final = await wait_until(completed)
    assert final["success"] is True and final["result"] == "final"
    r = await api.get(f"/w/main/jobs_u/completed/get_result/{flow_id}")
    assert r.json() == "final"
