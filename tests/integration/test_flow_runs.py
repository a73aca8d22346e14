"""Running flows through the API (jobs/run/preview_flow): real Postgres, real workers, real
Python steps. The engine (gristmill.flows.engine) advances a flow in the transaction that
completes each step's job."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gristmill.flows.engine import FlowEngine
from gristmill.server.platform import Platform

ADD_ONE = "def main(x: int):\n    return x + 1\n"
TIMES_TEN = "def main(y: int):\n    return y * 10\n"
FAIL = "def main():\n    raise ValueError('boom')\n"


# One platform for the module's tests, each in a workspace of its own (tests/integration/
# conftest.py): one checks that a refused flow left no job in its workspace.
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


async def wait_result(
    api: httpx.AsyncClient, workspace: str, value: dict[str, Any], args: dict[str, Any]
) -> httpx.Response:
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/preview_flow", json={"value": value, "args": args}
    )
    assert r.status_code in (200, 422), r.text
    return r


async def get_job(api: httpx.AsyncClient, workspace: str, job_id: str) -> dict[str, Any]:
    r = await api.get(f"/w/{workspace}/jobs_u/get/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_until(check: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_steps_pass_results_and_show_status(
    api: httpx.AsyncClient, workspace: str
) -> None:
    value = {
        "modules": [
            step("a", ADD_ONE, x=js("flow_input.n")),
            step("b", TIMES_TEN, y=js("results.a")),
        ]
    }
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview_flow", json={"value": value, "args": {"n": 4}}
    )
    assert r.status_code == 201, r.text
    flow_id = r.text

    async def done() -> dict[str, Any] | None:
        job = await get_job(api, workspace, flow_id)
        return job if job["type"] == "CompletedJob" else None

    job = await wait_until(done)
    assert job["success"] is True
    assert job["result"] == 50
    assert job["job_kind"] == "flowpreview"
    status = job["flow_status"]
    assert [m["id"] for m in status["modules"]] == ["a", "b"]
    assert [m["type"] for m in status["modules"]] == ["Success", "Success"]
    assert "engine" not in status
    r = await api.get(f"/w/{workspace}/jobs_u/completed/get_result/{flow_id}")
    assert r.json() == 50
    update = (await api.get(f"/w/{workspace}/jobs_u/getupdate/{flow_id}")).json()
    assert update["completed"] is True
    assert update["flow_status"]["modules"][1]["type"] == "Success"
    # The steps' jobs are the flow's children, named by their step.
    children = (await api.get(f"/w/{workspace}/jobs/list?parent_job={flow_id}")).json()
    assert len(children) == 2
    assert {c["parent_job"] for c in children} == {flow_id}
    step_jobs = {m["job"] for m in status["modules"]}
    assert {c["id"] for c in children} == step_jobs
    for child in children:
        full = await get_job(api, workspace, child["id"])
        assert full["is_flow_step"] is True
        assert full["root_job"] == flow_id


async def test_branchone_forloop_and_skip_if(api: httpx.AsyncClient, workspace: str) -> None:
    value = {
        "modules": [
            {
                "id": "pick",
                "value": {
                    "type": "branchone",
                    "branches": [
                        {
                            "expr": "flow_input.n > 100",
                            "modules": [step("big", ADD_ONE, x=js("1000"))],
                        },
                        {
                            "expr": "flow_input.n > 1",
                            "modules": [step("mid", ADD_ONE, x=js("flow_input.n"))],
                        },
                    ],
                    "default": [step("small", ADD_ONE, x=js("0"))],
                },
            },
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "iterator": js("[1, 2, results.pick]"),
                    "skip_failures": False,
                    "modules": [step("each", TIMES_TEN, y=js("flow_input.iter.value"))],
                },
            },
            {
                **step("skipped", FAIL),
                "skip_if": {"expr": "results.loop.length === 3"},
            },
        ]
    }
    r = await wait_result(api, workspace, value, {"n": 5})
    assert r.status_code == 200, r.text
    # The skipped step's result is its previous result: the loop's.
    assert r.json() == [10, 20, 60]
    job = await get_job(api, workspace, r.headers["x-job-id"])
    modules = {m["id"]: m for m in job["flow_status"]["modules"]}
    assert modules["pick"]["branch_chosen"] == {"type": "branch", "branch": 1}
    assert len(modules["loop"]["flow_jobs"]) == 3
    assert modules["skipped"]["skipped"] is True


async def test_failing_step_retries_then_failure_module(
    api: httpx.AsyncClient, workspace: str
) -> None:
    value = {
        "modules": [
            {
                **step("a", FAIL),
                "retry": {"constant": {"attempts": 1, "seconds": 0}},
            },
            step("never", ADD_ONE, x=js("1")),
        ],
        "failure_module": step(
            "failure",
            "def main(message: str):\n    return {'handled': message}\n",
            message=js("error.message"),
        ),
    }
    r = await wait_result(api, workspace, value, {})
    assert r.status_code == 422, r.text
    assert "boom" in r.json()["handled"]
    job = await get_job(api, workspace, r.headers["x-job-id"])
    status = job["flow_status"]
    assert job["success"] is False
    assert len(status["modules"][0]["failed_retries"]) == 1
    assert status["modules"][0]["type"] == "Failure"
    assert status["modules"][1]["type"] == "WaitingForPriorSteps"
    assert status["failure_module"]["type"] == "Success"
    children = (
        await api.get(f"/w/{workspace}/jobs/list?parent_job={r.headers['x-job-id']}")
    ).json()
    # Two attempts of "a", then the failure module.
    assert len(children) == 3


async def test_saved_script_step(api: httpx.AsyncClient, workspace: str) -> None:
    r = await api.post(
        f"/w/{workspace}/scripts/create",
        json={"path": "u/admin/add_one", "content": ADD_ONE, "language": "python3"},
    )
    assert r.status_code == 201, r.text
    value = {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "script",
                    "path": "u/admin/add_one",
                    "input_transforms": {"x": {"type": "static", "value": 41}},
                },
            }
        ]
    }
    r = await wait_result(api, workspace, value, {})
    assert r.status_code == 200, r.text
    assert r.json() == 42


async def test_cancel_cascades_to_steps(api: httpx.AsyncClient, workspace: str) -> None:
    value = {
        "modules": [
            step("slow", "import time\n\ndef main():\n    time.sleep(60)\n"),
            step("after", ADD_ONE, x=js("1")),
        ]
    }
    r = await api.post(f"/w/{workspace}/jobs/run/preview_flow", json={"value": value, "args": {}})
    assert r.status_code == 201, r.text
    flow_id = r.text

    async def running_child() -> str | None:
        children = (await api.get(f"/w/{workspace}/jobs/list?parent_job={flow_id}")).json()
        running = [c for c in children if c.get("running")]
        return running[0]["id"] if running else None

    child = await wait_until(running_child)
    r = await api.post(f"/w/{workspace}/jobs_u/queue/cancel/{flow_id}", json={"reason": "stop"})
    assert r.status_code == 200, r.text
    flow = await get_job(api, workspace, flow_id)
    assert flow["type"] == "CompletedJob" and flow["canceled"] is True

    async def child_done() -> dict[str, Any] | None:
        job = await get_job(api, workspace, child)
        return job if job["type"] == "CompletedJob" else None

    done = await wait_until(child_done)
    assert done["canceled"] is True
    # Nothing more was pushed after the cancel.
    children = (await api.get(f"/w/{workspace}/jobs/list?parent_job={flow_id}")).json()
    assert [c["id"] for c in children] == [child]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"modules": [step("a", ADD_ONE), step("a", ADD_ONE)]}, '"a"'),
        (
            {
                "modules": [
                    {
                        "id": "s",
                        "value": {
                            "type": "script",
                            "path": "u/admin/missing",
                            "input_transforms": {},
                        },
                    }
                ]
            },
            "u/admin/missing",
        ),
    ],
)
async def test_bad_flow_is_refused(
    api: httpx.AsyncClient, workspace: str, value: dict[str, Any], named: str
) -> None:
    r = await api.post(f"/w/{workspace}/jobs/run/preview_flow", json={"value": value, "args": {}})
    assert r.status_code == 400, r.text
    assert named in r.text
    assert (await api.get(f"/w/{workspace}/jobs/list?job_kinds=flowpreview")).json() == []


async def test_lost_advance_is_recovered_by_the_sweep(
    platform_api: httpx.AsyncClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's completion commits even when its flow's advance fails; the monitor's
    sweep advances the flow afterwards."""
    # A platform of its own: the sweep's count covers every flow of the platform.
    api = platform_api
    original = FlowEngine.advance
    failures = {"left": 1}

    async def failing(self: FlowEngine, *args: Any, **kwargs: Any) -> bool:
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("killed mid-advance")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(FlowEngine, "advance", failing)
    value = {
        "modules": [
            step("a", ADD_ONE, x=js("flow_input.n")),
            step("b", TIMES_TEN, y=js("results.a")),
        ]
    }
    r = await api.post("/w/main/jobs/run/preview_flow", json={"value": value, "args": {"n": 1}})
    flow_id = r.text

    async def first_done() -> bool:
        children = (await api.get(f"/w/main/jobs/list?parent_job={flow_id}")).json()
        return len(children) == 1 and children[0]["type"] == "CompletedJob"

    await wait_until(first_done)
    await asyncio.sleep(0.3)
    flow = await get_job(api, "main", flow_id)
    assert flow["type"] == "QueuedJob"  # stalled: "a" is done, "b" was never pushed
    assert flow["flow_status"]["modules"][0]["type"] == "InProgress"
    assert await platform.flows.sweep() == 1
    assert await platform.flows.sweep() == 0  # nothing stalled any more

    async def flow_done() -> dict[str, Any] | None:
        job = await get_job(api, "main", flow_id)
        return job if job["type"] == "CompletedJob" else None

    assert (await wait_until(flow_done))["result"] == 20


async def test_job_id_chosen_by_the_caller(api: httpx.AsyncClient, workspace: str) -> None:
    job_id = str(uuid.uuid4())
    value = {"modules": [step("a", ADD_ONE, x=js("2"))]}
    r = await api.post(
        f"/w/{workspace}/jobs/run_wait_result/preview_flow?job_id={job_id}",
        json={"value": value, "args": {}},
    )
    assert r.status_code == 200 and r.json() == 3
    assert r.headers["x-job-id"] == job_id
    # A retry with the id gets its job (docs/reliability.md); another flow, a 409.
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview_flow?job_id={job_id}", json={"value": value, "args": {}}
    )
    assert r.status_code == 201 and r.text == job_id
    other = {"modules": [step("a", ADD_ONE, x=js("3"))]}
    r = await api.post(
        f"/w/{workspace}/jobs/run/preview_flow?job_id={job_id}", json={"value": other, "args": {}}
    )
    assert r.status_code == 409 and "its flow differs" in r.text, r.text
