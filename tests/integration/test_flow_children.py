"""Flows that run flows, through the API: saved flows run with run/f and run_wait_result/f,
sub-flow steps (a `flow` module), parallel `forloopflow` and `branchall` (each iteration or
branch a child flow job, kind `flownode`), and cancel reaching the children. Real Postgres,
real workers, real Python and Bash steps."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from gristmill.server.platform import Platform

F = "/w/main/flows"
J = "/w/main/jobs"


# One platform for the module's tests (each keeps to its own paths and jobs).
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


def js(expr: str) -> dict[str, Any]:
    return {"type": "javascript", "expr": expr}


def py(id_: str, content: str, **inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id_,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": content,
            "input_transforms": inputs,
        },
    }


def bash(id_: str, content: str, **inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": id_,
        "value": {
            "type": "rawscript",
            "language": "bash",
            "content": content,
            "input_transforms": inputs,
        },
    }


DOUBLE = "def main(x: int):\n    return x * 2\n"
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}


async def save_flow(api: httpx.AsyncClient, path: str, value: dict[str, Any]) -> None:
    r = await api.post("/w/main/folders/create", json={"name": "flows"})
    assert r.status_code in (200, 201) or "exists" in r.text, r.text
    r = await api.post(
        f"{F}/create", json={"path": path, "summary": path, "value": value, "schema": SCHEMA}
    )
    assert r.status_code == 201, r.text


async def get_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    r = await api.get(f"/w/main/jobs_u/get/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_done(api: httpx.AsyncClient, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = await get_job(api, job_id)
        if job["type"] == "CompletedJob":
            return job
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        await asyncio.sleep(0.05)


async def test_saved_flow_runs_by_path_async_and_waiting(api: httpx.AsyncClient) -> None:
    path = f"f/flows/double_{uuid.uuid4().hex[:8]}"
    await save_flow(api, path, {"modules": [py("a", DOUBLE, x=js("flow_input.n"))]})
    r = await api.post(f"{J}/run_wait_result/f/{path}", json={"n": 21})
    assert r.status_code == 200, r.text
    assert r.json() == 42
    r = await api.post(f"{J}/run/f/{path}", json={"n": 5})
    assert r.status_code == 201, r.text
    job = await wait_done(api, r.text)
    assert job["success"] is True and job["result"] == 10
    assert job["job_kind"] == "flow" and job["script_path"] == path
    # The flow it ran, for drawing it (the UI's graph): the value of the version run.
    assert [m["id"] for m in job["raw_flow"]["modules"]] == ["a"]
    # Listed with its kind and path; its step listed as its child.
    listed = (await api.get(f"{J}/list?script_path_exact={path}")).json()
    assert r.text in {j["id"] for j in listed}
    children = (await api.get(f"{J}/list?parent_job={r.text}")).json()
    assert [c["parent_job"] for c in children] == [r.text]
    # Lists name each step's module (Windmill's flow_step_id), as a single read does.
    assert [(c["flow_step_id"], c["is_flow_step"]) for c in children] == [("a", True)]
    assert job["same_worker"] is False


async def test_run_f_refuses_bad_args_missing_and_archived_flows(api: httpx.AsyncClient) -> None:
    path = f"f/flows/strict_{uuid.uuid4().hex[:8]}"
    await save_flow(api, path, {"modules": [py("a", DOUBLE, x=js("flow_input.n"))]})
    before = len((await api.get(f"{J}/list?script_path_exact={path}")).json())
    r = await api.post(f"{J}/run/f/{path}", json={"n": "not a number"})
    assert r.status_code == 400, r.text
    assert "n" in r.text and path in r.text
    r = await api.post(f"{J}/run/f/{path}", json={})
    assert r.status_code == 400 and "n" in r.text
    r = await api.post(f"{J}/run/f/f/flows/nothing_here_{uuid.uuid4().hex[:6]}", json={})
    assert r.status_code == 404, r.text
    assert (await api.post(f"{F}/archive/{path}", json={"archived": True})).status_code == 200
    r = await api.post(f"{J}/run_wait_result/f/{path}", json={"n": 1})
    assert r.status_code == 400 and "archived" in r.text
    # Nothing was queued by any of the refusals.
    assert len((await api.get(f"{J}/list?script_path_exact={path}")).json()) == before


async def test_sub_flow_step_runs_the_saved_flow_as_a_child(api: httpx.AsyncClient) -> None:
    inner = f"f/flows/inner_{uuid.uuid4().hex[:8]}"
    await save_flow(api, inner, {"modules": [py("d", DOUBLE, x=js("flow_input.n"))]})
    value = {
        "modules": [
            py("a", DOUBLE, x=js("flow_input.n")),
            {
                "id": "sub",
                "value": {
                    "type": "flow",
                    "path": inner,
                    "input_transforms": {"n": js("results.a")},
                },
            },
            bash("c", 'x="$1"\necho "$(( x + 1 ))"', x=js("String(results.sub)")),
        ]
    }
    r = await api.post(f"{J}/run_wait_result/preview_flow", json={"value": value, "args": {"n": 3}})
    assert r.status_code == 200, r.text
    assert r.json() == "13"  # a Bash step's result: its last line of output
    flow_id = r.headers["x-job-id"]
    status = (await get_job(api, flow_id))["flow_status"]
    sub_job = status["modules"][1]["job"]
    child = await get_job(api, sub_job)
    assert child["job_kind"] == "flow" and child["script_path"] == inner
    assert child["parent_job"] == flow_id and child["success"] is True
    assert child["args"] == {"n": 6}
    # The sub-flow's own step is its child, with the root flow as root.
    (grandchild,) = (await api.get(f"{J}/list?parent_job={sub_job}")).json()
    assert (await get_job(api, grandchild["id"]))["root_job"] == flow_id


async def test_a_missing_sub_flow_fails_the_step_naming_it(api: httpx.AsyncClient) -> None:
    value = {"modules": [{"id": "sub", "value": {"type": "flow", "path": "f/flows/absent_x"}}]}
    r = await api.post(f"{J}/run_wait_result/preview_flow", json={"value": value, "args": {}})
    assert r.status_code == 422, r.text
    assert "f/flows/absent_x" in r.json()["error"]["message"]


async def test_parallel_forloop_with_parallelism_keeps_order(api: httpx.AsyncClient) -> None:
    value = {
        "modules": [
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "parallel": True,
                    "parallelism": {"type": "static", "value": 2},
                    "iterator": js("flow_input.items"),
                    "modules": [
                        py(
                            "body",
                            "import time\ndef main(x: int, i: int, k: int):\n"
                            "    time.sleep(0.3 if i == 0 else 0)\n    return [x * 2, i, k]\n",
                            x=js("flow_input.iter.value"),
                            i=js("flow_input.iter.index"),
                            k=js("flow_input.k"),
                        )
                    ],
                },
            },
            py("after", "def main(r: list):\n    return len(r)\n", r=js("results.loop")),
        ]
    }
    r = await api.post(
        f"{J}/run_wait_result/preview_flow",
        json={"value": value, "args": {"items": [5, 6, 7], "k": 9}},
    )
    assert r.status_code == 200, r.text
    assert r.json() == 3
    flow_id = r.headers["x-job-id"]
    job = await get_job(api, flow_id)
    loop = job["flow_status"]["modules"][0]
    assert loop["type"] == "Success"
    assert loop["flow_jobs_success"] == [True, True, True]
    results = [(await get_job(api, j))["result"] for j in loop["flow_jobs"]]
    # Each child's result is its iteration's (its last module's).
    assert results == [[10, 0, 9], [12, 1, 9], [14, 2, 9]]
    kids = [await get_job(api, j) for j in loop["flow_jobs"]]
    assert {k["job_kind"] for k in kids} == {"flownode"}
    assert {k["parent_job"] for k in kids} == {flow_id}
    # The loop's result kept the iterations' order: read it through a later step's input.
    last = (await get_job(api, job["flow_status"]["modules"][1]["job"]))["args"]
    assert last == {"r": [[10, 0, 9], [12, 1, 9], [14, 2, 9]]}


async def test_parallel_branchall_and_a_failing_branch(api: httpx.AsyncClient) -> None:
    def value(skip: bool) -> dict[str, Any]:
        return {
            "modules": [
                {
                    "id": "all",
                    "value": {
                        "type": "branchall",
                        "parallel": True,
                        "branches": [
                            {"modules": [py("x", DOUBLE, x=js("flow_input.n"))]},
                            {
                                "skip_failure": skip,
                                "modules": [bash("bad", "echo oops >&2; exit 3")],
                            },
                            {"modules": [bash("y", 's="$1"\necho "$s"', s=js("'hi'"))]},
                        ],
                    },
                }
            ]
        }

    r = await api.post(
        f"{J}/run_wait_result/preview_flow", json={"value": value(True), "args": {"n": 4}}
    )
    assert r.status_code == 200, r.text
    got = r.json()
    assert got[0] == 8 and got[2] == "hi"
    assert "error" in got[1]
    r = await api.post(
        f"{J}/run_wait_result/preview_flow", json={"value": value(False), "args": {"n": 4}}
    )
    assert r.status_code == 422, r.text


async def test_cancel_reaches_the_children_of_a_parallel_loop(api: httpx.AsyncClient) -> None:
    value = {
        "modules": [
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "parallel": True,
                    "iterator": {"type": "static", "value": [1, 2]},
                    "modules": [bash("wait", "sleep 30")],
                },
            }
        ]
    }
    r = await api.post(f"{J}/run/preview_flow", json={"value": value, "args": {}})
    assert r.status_code == 201, r.text
    flow_id = r.text
    deadline = time.monotonic() + 20
    while True:
        kids = (await api.get(f"{J}/list?parent_job={flow_id}")).json()
        if len(kids) == 2:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    r = await api.post(f"{J}/queue/cancel/{flow_id}", json={"reason": "enough"})
    assert r.status_code == 200, r.text
    job = await wait_done(api, flow_id)
    assert job["canceled"] is True
    for kid in kids:
        child = await wait_done(api, kid["id"])
        assert child["canceled"] is True, child
        for step in (await api.get(f"{J}/list?parent_job={kid['id']}")).json():
            done = await wait_done(api, step["id"])
            assert done["success"] is False


async def test_a_saved_flow_over_its_timeout_fails_and_its_steps_stop(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    path = f"f/flows/slow_{uuid.uuid4().hex[:8]}"
    value = {"modules": [bash("wait", "sleep 30")]}
    await save_flow(api, path, value)
    r = await api.post(
        f"{F}/update/{path}", json={"path": path, "summary": "", "value": value, "timeout": 1}
    )
    assert r.status_code == 200, r.text
    r = await api.post(f"{J}/run/f/{path}", json={"n": 1})
    assert r.status_code == 201, r.text
    flow_id = r.text
    deadline = time.monotonic() + 20
    while not (await api.get(f"{J}/list?parent_job={flow_id}&running=true")).json():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.2)
    await platform.flows.sweep()  # what the monitor does every few seconds
    job = await wait_done(api, flow_id)
    assert job["success"] is False
    assert "timed out after 1 s" in job["result"]["error"]["message"]
    (step,) = (await api.get(f"{J}/list?parent_job={flow_id}")).json()
    assert (await wait_done(api, step["id"]))["canceled"] is True
