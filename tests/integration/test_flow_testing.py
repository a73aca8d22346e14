"""Testing flows through the API: one step run alone with a given context
(flows/test_step[_wait_result]) and results pinned at run time (run/preview_flow's
``pinned``). Real Postgres, real workers, real Python steps."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

ADD = "def main(x: int, y: int = 0):\n    return x + y\n"
FAIL = "def main():\n    raise ValueError('must not run')\n"


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


VALUE = {
    "modules": [
        step("a", FAIL),
        {
            "id": "loop",
            "value": {
                "type": "forloopflow",
                "iterator": js("results.a"),
                "skip_failures": False,
                "modules": [
                    step(
                        "each",
                        ADD,
                        x=js("flow_input.iter.value"),
                        y={"type": "static", "value": 100},
                    )
                ],
            },
        },
        step("b", ADD, x=js("previous_result.length"), y=js("flow_input.k")),
    ]
}


async def test_one_step_alone_and_pinned_results(api: httpx.AsyncClient) -> None:
    # A step alone, with the context it would see (here inside the loop).
    r = await api.post(
        "/w/main/flows/test_step_wait_result",
        json={"value": VALUE, "step_id": "each", "iter": {"value": 5, "index": 0}},
    )
    assert r.status_code == 200, r.text
    assert r.json() == 105
    job_id = r.headers["x-job-id"]
    job = (await api.get(f"/w/main/jobs_u/get/{job_id}")).json()
    assert job["job_kind"] == "preview" and job["args"] == {"x": 5, "y": 100}

    # The async form: a job id; previous_result and flow_input as given.
    r = await api.post(
        "/w/main/flows/test_step",
        json={"value": VALUE, "step_id": "b", "previous_result": [1, 2], "flow_input": {"k": 7}},
    )
    assert r.status_code == 201, r.text
    job_id = r.text
    deadline = time.monotonic() + 30
    while True:
        maybe = (await api.get(f"/w/main/jobs_u/completed/get_result_maybe/{job_id}")).json()
        if maybe["completed"]:
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert maybe["success"] is True and maybe["result"] == 9

    # A saved flow, by path.
    r = await api.post("/w/main/folders/create", json={"name": "shared"})
    assert r.status_code in (200, 201), r.text
    r = await api.post(
        "/w/main/flows/create", json={"path": "f/shared/t", "summary": "", "value": VALUE}
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/w/main/flows/test_step_wait_result",
        json={"path": "f/shared/t", "step_id": "each", "iter": {"value": 1, "index": 0}},
    )
    assert r.status_code == 200 and r.json() == 101, r.text

    # Refusals name the step.
    r = await api.post("/w/main/flows/test_step", json={"value": VALUE, "step_id": "zzz"})
    assert r.status_code == 400 and 'step "zzz" is not in the flow' in r.text, r.text
    r = await api.post("/w/main/flows/test_step", json={"value": VALUE, "step_id": "loop"})
    assert r.status_code == 400 and 'step "loop" is a forloopflow' in r.text, r.text
    r = await api.post("/w/main/flows/test_step", json={"value": VALUE, "step_id": "b"})
    assert r.status_code == 400 and "previous_result" in r.text, r.text

    # Pinned: "a" (which would fail) is not run; its pinned result feeds the loop.
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview_flow",
        json={"value": VALUE, "args": {"k": 1}, "pinned": {"a": [1, 2, 3]}},
    )
    assert r.status_code == 200, r.text
    assert r.json() == 4  # 3 iterations + k
    flow_id = r.headers["x-job-id"]
    children = (await api.get(f"/w/main/jobs/list?parent_job={flow_id}")).json()
    assert len(children) == 4  # the loop's three and b; a did not run

    # Pinning a loop: not entered at all.
    r = await api.post(
        "/w/main/jobs/run_wait_result/preview_flow",
        json={"value": VALUE, "args": {"k": 0}, "pinned": {"a": [], "loop": [0, 0]}},
    )
    assert r.status_code == 200 and r.json() == 2, r.text
    r = await api.post(
        "/w/main/jobs/run/preview_flow",
        json={"value": VALUE, "args": {}, "pinned": {"nope": 1}},
    )
    assert r.status_code == 400 and "pinned: no step 'nope'" in r.text, r.text
