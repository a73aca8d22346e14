"""Flow concurrency limits and same_worker flows (gristmill.flows.engine, "Concurrency" and
"same_worker"): real Postgres, the platform's two real workers, real Python steps.

One platform for the module (the tests use keys of their own, and leave no run waiting):
starting one per test cost more than the tests themselves."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from gristmill.flows import state
from gristmill.server.platform import Platform

SLEEP_1 = "import time\n\ndef main(n: int):\n    time.sleep(1)\n    return n\n"
QUICK = "def main(n: int):\n    return n\n"
WRITE_SHARED = (
    "import os\n\n"
    "def main(n: int):\n"
    "    with open('./shared/x', 'w') as f:\n"
    "        f.write(str(n * 2))\n"
    "    return os.getcwd()\n"
)
READ_SHARED = (
    "import os\n\n"
    "def main():\n"
    "    with open('./shared/x') as f:\n"
    "        return {'x': int(f.read()), 'cwd': os.getcwd()}\n"
)
NO_SHARED = "import os\n\ndef main():\n    return os.path.exists('./shared')\n"


# One platform for the module's tests (each keeps to its own paths and jobs).
@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


def js(expr: str) -> dict[str, Any]:
    return {"type": "javascript", "expr": expr}


def flow(content: str, **options: Any) -> dict[str, Any]:
    return {
        "modules": [
            {
                "id": "a",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": content,
                    "input_transforms": {"n": js("flow_input.n")},
                },
            }
        ],
        **options,
    }


async def submit(
    api: httpx.AsyncClient, value: dict[str, Any], args: dict[str, Any], path: str | None = None
) -> str:
    url = "/w/main/jobs/run/preview_flow"
    body: dict[str, Any] = {"value": value, "args": args}
    if path is not None:
        body["path"] = path
    r = await api.post(url, json=body)
    assert r.status_code == 201, r.text
    return r.text


async def get_job(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    r = await api.get(f"/w/main/jobs_u/get/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_until(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, every: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(every)


async def all_done(api: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        jobs = [await get_job(api, i) for i in ids]
        return jobs if all(j["type"] == "CompletedJob" for j in jobs) else None

    return await wait_until(done)


def interval(job: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(job["started_at"]), dt.datetime.fromisoformat(
        job["completed_at"]
    )


def is_waiting(job: dict[str, Any]) -> bool:
    """Queued for its concurrency slot: not running, no module started (Windmill's queued
    flow), no step pushed."""
    return (
        job["type"] == "QueuedJob"
        and not job["running"]
        and job["started_at"] is None
        and all(m["type"] == "WaitingForPriorSteps" for m in job["flow_status"]["modules"])
    )


async def test_limit_one_runs_one_at_a_time_in_order(api: httpx.AsyncClient) -> None:
    """Three runs of a flow limited to 1 (two workers free): the second and third wait,
    queued and holding no worker, and start one after another as the previous one ends."""
    value = flow(SLEEP_1, concurrent_limit=1)
    ids = [await submit(api, value, {"n": i}, path="f/ops/limited") for i in range(3)]
    first, *others = [await get_job(api, i) for i in ids]
    assert first["type"] == "QueuedJob" and first["running"]
    assert all(is_waiting(j) for j in others), others
    assert (await api.get(f"/w/main/jobs/list?parent_job={ids[1]}")).json() == []

    jobs = await all_done(api, ids)
    assert [j["result"] for j in jobs] == [0, 1, 2]
    spans = [interval(j) for j in jobs]
    # In the order they were submitted, never two at once.
    for (_, ended), (started, _) in itertools.pairwise(spans):
        assert started >= ended, spans


async def test_two_ending_at_once_start_each_waiter_once(api: httpx.AsyncClient) -> None:
    """Limit 2, four runs: the first two end at about the same time on the two workers,
    each ending transaction starting waiters under the key's lock: never more than two run
    at once, and each waiting run starts once (one step job each)."""
    value = flow(SLEEP_1, concurrent_limit=2)
    ids = [await submit(api, value, {"n": i}, path="f/ops/pair") for i in range(4)]
    jobs = await all_done(api, ids)
    assert [j["result"] for j in jobs] == [0, 1, 2, 3]
    spans = [interval(j) for j in jobs]
    for at, _ in spans:
        assert sum(1 for s, e in spans if s <= at < e) <= 2, spans
    for i in ids:
        assert len((await api.get(f"/w/main/jobs/list?parent_job={i}")).json()) == 1


async def test_concurrency_key_with_args(api: httpx.AsyncClient) -> None:
    """`$workspace/flow/$args[x]`: runs with another `x` do not count against each other.
    (And limits that cannot be used are refused, naming the field.)"""
    before = len((await api.get("/w/main/jobs/list?job_kinds=flowpreview")).json())
    for options, named in [
        ({"concurrent_limit": 0}, "concurrent_limit"),
        ({"concurrent_limit": 1.5}, "concurrent_limit"),
        ({"concurrent_limit": 1, "concurrency_time_window_s": -1}, "concurrency_time_window_s"),
    ]:
        r = await api.post(
            "/w/main/jobs/run/preview_flow",
            json={"value": flow(QUICK, **options), "args": {"n": 1}},
        )
        assert r.status_code == 400, r.text
        assert named in r.text
    assert len((await api.get("/w/main/jobs/list?job_kinds=flowpreview")).json()) == before

    value = flow(SLEEP_1, concurrent_limit=1, concurrency_key="$workspace/flow/$args[x]")
    a1 = await submit(api, value, {"n": 1, "x": "a"})
    b = await submit(api, value, {"n": 2, "x": "b"})
    a2 = await submit(api, value, {"n": 3, "x": "a"})
    assert (await get_job(api, b))["running"]
    assert is_waiting(await get_job(api, a2))

    ja1, jb, ja2 = await all_done(api, [a1, b, a2])
    assert [ja1["result"], jb["result"], ja2["result"]] == [1, 2, 3]
    (s1, e1), (sb, eb), (s2, _) = interval(ja1), interval(jb), interval(ja2)
    assert sb < e1 and s1 < eb  # a and b ran together
    assert s2 >= e1  # the second a waited for the first


async def test_time_window_holds_the_slot(api: httpx.AsyncClient, platform: Platform) -> None:
    """With a window, a run that ended keeps its slot until the window passes since its
    end; the monitor's sweep then starts the next run."""
    value = flow(QUICK, concurrent_limit=1, concurrency_time_window_s=2)
    first = await submit(api, value, {"n": 1}, path="f/ops/windowed")
    second = await submit(api, value, {"n": 2}, path="f/ops/windowed")
    (j1,) = await all_done(api, [first])
    assert await platform.flows.sweep() == 0  # the window holds: nothing starts
    assert is_waiting(await get_job(api, second))

    async def started() -> bool:
        await platform.flows.sweep()
        return (await get_job(api, second))["started_at"] is not None

    await wait_until(started, timeout=10, every=0.2)
    (j2,) = await all_done(api, [second])
    assert interval(j2)[0] >= interval(j1)[1] + dt.timedelta(seconds=2)


async def test_canceled_waiting_run_never_starts(api: httpx.AsyncClient) -> None:
    value = flow(SLEEP_1, concurrent_limit=1)
    running = await submit(api, value, {"n": 1}, path="f/ops/cancelled")
    waiting = await submit(api, value, {"n": 2}, path="f/ops/cancelled")
    r = await api.post(f"/w/main/jobs_u/queue/cancel/{waiting}", json={"reason": "no"})
    assert r.status_code == 200, r.text
    after = await submit(api, value, {"n": 3}, path="f/ops/cancelled")
    j1, jw, j3 = await all_done(api, [running, waiting, after])
    assert jw["status"] == "canceled"
    assert (await api.get(f"/w/main/jobs/list?parent_job={waiting}")).json() == []
    assert interval(j3)[0] >= interval(j1)[1] and j3["result"] == 3


async def test_a_waiting_run_that_cannot_start_fails(
    api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start that raises (a bug) when the slot frees fails that run, naming why, and
    frees the key: the ending flow's completion stands, the next run starts."""
    value = flow(SLEEP_1, concurrent_limit=1)
    first = await submit(api, value, {"n": 1}, path="f/ops/broken")
    broken = await submit(api, value, {"n": 2}, path="f/ops/broken")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("no start today")

    monkeypatch.setattr(state, "start", refuse)
    j1, jb = await all_done(api, [first, broken])
    monkeypatch.undo()
    assert j1["success"] and j1["result"] == 1
    assert not jb["success"] and "no start today" in jb["result"]["error"]["message"]
    after = await submit(api, value, {"n": 3}, path="f/ops/broken")
    assert (await get_job(api, after))["running"]
    (j3,) = await all_done(api, [after])
    assert j3["result"] == 3


async def test_same_worker_steps_share_a_directory(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    """Step 1 writes ./shared/x, step 2 reads it, on the same worker (pinned to it while
    queued: the first step's `sleep` leaves it queued a second); the flow's directory is
    gone once it ended, and a flow without same_worker has no ./shared."""
    value = {
        "same_worker": True,
        "modules": [
            {**flow(WRITE_SHARED)["modules"][0], "sleep": 1},
            {
                "id": "b",
                "value": {
                    "type": "rawscript",
                    "language": "python3",
                    "content": READ_SHARED,
                    "input_transforms": {},
                },
            },
        ],
    }
    flow_id = await submit(api, value, {"n": 21})

    async def second_queued() -> list[dict[str, Any]] | None:
        steps = (await api.get(f"/w/main/jobs/list?parent_job={flow_id}")).json()
        return steps if len(steps) == 2 else None

    steps = await wait_until(second_queued)
    queued = next(s for s in steps if s["type"] == "QueuedJob")
    first = await get_job(api, next(s["id"] for s in steps if s["id"] != queued["id"]))
    assert platform.pool is not None
    async with platform.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT worker_pin FROM job_queue WHERE id = %s", (uuid.UUID(queued["id"]),)
        )
        assert await cur.fetchone() == (first["worker"],)
    (job,) = await all_done(api, [flow_id])
    assert job["success"], job["result"]
    assert job["result"]["x"] == 42
    assert (await get_job(api, flow_id))["same_worker"] is True
    steps = (await api.get(f"/w/main/jobs/list?parent_job={flow_id}")).json()
    workers = {(await get_job(api, s["id"]))["worker"] for s in steps}
    assert len(steps) == 2 and len(workers) == 1 and None not in workers, workers
    flow_dir = Path(platform.settings.jobs_dir) / flow_id

    async def removed() -> bool:
        return not flow_dir.exists()

    await wait_until(removed, timeout=5)

    plain = await submit(
        api,
        {
            "modules": [
                {
                    "id": "c",
                    "value": {
                        "type": "rawscript",
                        "language": "python3",
                        "content": NO_SHARED,
                        "input_transforms": {},
                    },
                }
            ]
        },
        {},
    )
    (job,) = await all_done(api, [plain])
    assert job["result"] is False
