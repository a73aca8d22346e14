"""Restarting a finished flow from a step (jobs/restart/f/{id}/from/{step_id}[/{n}]): real
Postgres, real workers, real Python steps. The earlier steps' jobs are not run again: the new
flow job's children are the re-run steps only."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

ADD_ONE = "def main(x: int):\n    return x + 1\n"
# Fails while asked to (the restart passes other args).
MAYBE_FAIL = (
    "def main(x, fail: bool):\n    if fail:\n        raise ValueError('asked to fail')\n"
    "    return x * 10\n"
)
DOUBLE_UNLESS_BAD = (
    "def main(v: int, bad: int):\n    if v == bad:\n        raise ValueError(f'bad {v}')\n"
    "    return v * 2\n"
)


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


async def finished(api: httpx.AsyncClient, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await api.get(f"/w/main/jobs_u/get/{job_id}")
        assert r.status_code == 200, r.text
        job = r.json()
        if job["type"] == "CompletedJob":
            return job
        assert time.monotonic() < deadline, f"flow {job_id} did not finish"
        await asyncio.sleep(0.05)


async def children(api: httpx.AsyncClient, job_id: str) -> list[str]:
    r = await api.get(f"/w/main/jobs/list?parent_job={job_id}")
    assert r.status_code == 200, r.text
    return sorted(c["id"] for c in r.json())


async def run_flow(api: httpx.AsyncClient, value: dict[str, Any], args: dict[str, Any]) -> str:
    r = await api.post("/w/main/jobs/run/preview_flow", json={"value": value, "args": args})
    assert r.status_code == 201, r.text
    return r.text


async def restart_from_a_top_level_step_and_refusals(api: httpx.AsyncClient) -> None:
    value = {
        "modules": [
            step("a", ADD_ONE, x=js("flow_input.n")),
            step("b", ADD_ONE, x=js("results.a")),
            step("c", MAYBE_FAIL, x=js("previous_result"), fail=js("flow_input.fail")),
        ]
    }
    old = await run_flow(api, value, {"n": 1, "fail": True})
    old_job = await finished(api, old)
    assert old_job["success"] is False
    assert len(await children(api, old)) == 3

    # Refused: a step not in the flow, an iteration on a script step, a running flow.
    r = await api.post(f"/w/main/jobs/restart/f/{old}/from/nope", json={"n": 1, "fail": False})
    assert r.status_code == 400 and 'step "nope" is not in the flow' in r.text, r.text
    r = await api.post(f"/w/main/jobs/restart/f/{old}/from/c/2")
    assert r.status_code == 400 and 'step "c" is a rawscript' in r.text, r.text

    r = await api.post(f"/w/main/jobs/restart/f/{old}/from/c", json={"n": 1, "fail": False})
    assert r.status_code == 201, r.text
    new = r.text
    job = await finished(api, new)
    assert job["success"] is True, job["result"]
    assert job["result"] == 30  # b's old result (3) reused
    assert job["args"] == {"n": 1, "fail": False}
    assert len(await children(api, new)) == 1  # only c ran again
    status = job["flow_status"]
    assert [m["type"] for m in status["modules"]] == ["Success", "Success", "Success"]
    assert status["modules"][0]["job"] == old_job["flow_status"]["modules"][0]["job"]

    # A flow still running cannot be restarted.
    sleepy = {"modules": [step("s", "import time\ndef main():\n    time.sleep(5)\n")]}
    running = await run_flow(api, sleepy, {})
    r = await api.post(f"/w/main/jobs/restart/f/{running}/from/s")
    assert r.status_code == 400 and "still running" in r.text, r.text
    await api.post(f"/w/main/jobs_u/queue/cancel/{running}", json={"reason": "test"})


async def restart_a_failed_loop_from_iteration_n(api: httpx.AsyncClient) -> None:
    value = {
        "modules": [
            step("a", ADD_ONE, x=js("flow_input.n")),
            {
                "id": "loop",
                "value": {
                    "type": "forloopflow",
                    "iterator": js("[1, 2, 3, 4]"),
                    "skip_failures": False,
                    "modules": [
                        step(
                            "each",
                            DOUBLE_UNLESS_BAD,
                            v=js("flow_input.iter.value"),
                            bad=js("flow_input.bad"),
                        )
                    ],
                },
            },
        ]
    }
    old = await run_flow(api, value, {"n": 0, "bad": 3})
    old_job = await finished(api, old)
    assert old_job["success"] is False
    assert len(await children(api, old)) == 4  # a, then iterations 0, 1, 2 (failed)

    r = await api.post(f"/w/main/jobs/restart/f/{old}/from/loop/3")
    assert r.status_code == 400 and "iteration 3 is out of range" in r.text, r.text

    # From iteration 2 (the failed one) of the loop, named by its inner step.
    r = await api.post(f"/w/main/jobs/restart/f/{old}/from/each/2", json={"n": 0, "bad": -1})
    assert r.status_code == 201, r.text
    job = await finished(api, r.text)
    assert job["success"] is True, job["result"]
    assert job["result"] == [2, 4, 6, 8]
    assert len(await children(api, r.text)) == 2  # iterations 2 and 3 only


async def test_restart_from_a_step_and_from_an_iteration(api: httpx.AsyncClient) -> None:
    # Both on one platform, at once (one fresh database instead of two: test time).
    await asyncio.gather(
        restart_from_a_top_level_step_and_refusals(api),
        restart_a_failed_loop_from_iteration_n(api),
    )
