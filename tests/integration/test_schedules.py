"""Schedules for real (Postgres, the platform's ticker, workers, Python scripts): the API
with its checks, firing every second, handlers, no_flow_overlap, the missed-tick policy, a
flow schedule (docs/triggers.md "Schedules")."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from gristmill.server.platform import Platform

ECHO = (
    "import os\n"
    "def main(label: str = 'x'):\n"
    "    return {'label': label, 'schedule': os.environ.get('WM_SCHEDULE_PATH'),\n"
    "            'scheduled_for': os.environ.get('WM_SCHEDULED_FOR')}\n"
)
FLAKY = "def main(fail: bool = False):\n    if fail:\n        raise Exception('boom')\n    return 'ok'\n"
SLOW = "import time\ndef main():\n    time.sleep(2.5)\n    return 'slow'\n"
# Handlers declare the arguments they want (Windmill's handler templates do the same).
ON_FAILURE = (
    "def main(path: str, schedule_path: str, failed_times: int, error: dict, is_flow: bool,\n"
    "         started_at: str, extra: str = ''):\n"
    "    return {'path': path, 'schedule_path': schedule_path, 'failed_times': failed_times,\n"
    "            'message': error.get('message'), 'extra': extra}\n"
)
ON_RECOVERY = (
    "def main(path: str, schedule_path: str, error_started_at: str, success_result: str,\n"
    "         success_times: int):\n"
    "    return {'schedule_path': schedule_path, 'success_result': success_result,\n"
    "            'success_times': success_times}\n"
)


@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


async def wait_until(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def save_script(api: httpx.AsyncClient, path: str, content: str) -> None:
    r = await api.post(
        "/w/main/scripts/create", json={"path": path, "content": content, "language": "python3"}
    )
    assert r.status_code == 201, r.text


async def runs(platform: Platform, path: str) -> list[dict[str, Any]]:
    """The schedule's ended runs, oldest tick first."""
    async with platform.db.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT r.tick, r.attempt, c.status, c.result, r.job_id FROM schedule_run r "
                "JOIN job_completed c ON c.id = r.job_id "
                "WHERE r.workspace_id = 'main' AND r.schedule_path = %s ORDER BY r.tick, r.attempt",
                (path,),
            )
        ).fetchall()
    return [
        {"tick": t, "attempt": a, "status": s, "result": res, "job_id": j}
        for t, a, s, res, j in rows
    ]


async def handler_results(platform: Platform, script: str) -> list[Any]:
    async with platform.db.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT c.result FROM job j JOIN job_completed c USING (id) "
                "WHERE j.workspace_id = 'main' AND j.runnable_path = %s ORDER BY c.completed_at",
                (script,),
            )
        ).fetchall()
    return [r[0] for r in rows]


async def get(api: httpx.AsyncClient, path: str) -> dict[str, Any]:
    r = await api.get(f"/w/main/schedules/get/{path}")
    assert r.status_code == 200, r.text
    return r.json()


async def disable(api: httpx.AsyncClient, path: str) -> None:
    r = await api.post(f"/w/main/schedules/setenabled/{path}", json={"enabled": False})
    assert r.status_code == 200, r.text


async def test_crud_preview_and_bad_input(api: httpx.AsyncClient) -> None:
    await save_script(api, "u/admin/sched_crud", ECHO)
    base = {
        "path": "u/admin/crud",
        "schedule": "0 0 12 * * *",
        "timezone": "Europe/Paris",
        "script_path": "u/admin/sched_crud",
        "is_flow": False,
        "args": {"label": "a"},
    }
    bad = [
        ({"schedule": "0 61 * * * *"}, "schedule: "),
        ({"timezone": "Mars/Olympus"}, "timezone: "),
        ({"script_path": "u/admin/nothing_here"}, "script_path: no script at u/admin/nothing_here"),
        ({"script_path": "u/admin/sched_crud", "is_flow": True}, "script_path: no flow"),
        ({"args": {"label": 3}}, "args: "),
        ({"args": {"nope": 1}}, "args: "),
        ({"on_failure": "script/u/admin/missing"}, "on_failure: no script at u/admin/missing"),
        ({"on_failure": "not a path"}, "on_failure"),
        ({"on_failure_times": 0}, "on_failure_times"),
        ({"retry": {"constant": {"attempts": "x"}}}, "retry.constant.attempts"),
        ({"path": "nowhere"}, "invalid path"),
        ({"cron_version": "v9"}, "cron_version"),
    ]
    for change, message in bad:
        r = await api.post("/w/main/schedules/create", json={**base, **change})
        assert r.status_code == 400, (change, r.text)
        assert message in r.text, (change, r.text)
    # Nothing of the refused ones was saved.
    r = await api.get("/w/main/schedules/exists/u/admin/crud")
    assert r.json() is False

    r = await api.post("/w/main/schedules/create", json=base)
    assert r.status_code == 201, r.text
    assert r.text == "u/admin/crud"
    r = await api.post("/w/main/schedules/create", json=base)
    assert r.status_code == 400 and "already exists" in r.text
    got = await get(api, "u/admin/crud")
    # Stored disabled (enabled not sent), as Windmill stores it.
    assert got["enabled"] is False and got["next_tick"] is None
    assert got["timezone"] == "Europe/Paris" and got["args"] == {"label": "a"}
    assert got["permissioned_as"] == "u/superadmin_secret" and got["cron_version"] == "v2"
    assert (await api.get("/w/main/schedules/exists/u/admin/crud")).json() is True

    edit = {k: v for k, v in base.items() if k not in ("path", "script_path", "is_flow")}
    r = await api.post(
        "/w/main/schedules/update/u/admin/crud", json={**edit, "schedule": "bad cron"}
    )
    assert r.status_code == 400 and "schedule: " in r.text
    r = await api.post(
        "/w/main/schedules/update/u/admin/crud",
        json={**edit, "schedule": "0 30 6 * * MON-FRI", "summary": "weekdays"},
    )
    assert r.status_code == 200, r.text
    r = await api.post("/w/main/schedules/setenabled/u/admin/crud", json={"enabled": True})
    assert r.status_code == 200, r.text
    got = await get(api, "u/admin/crud")
    assert got["schedule"] == "0 30 6 * * MON-FRI" and got["summary"] == "weekdays"
    assert got["enabled"] is True
    local = dt.datetime.fromisoformat(got["next_tick"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute, local.second) == (6, 30, 0) and local.weekday() < 5

    listed = (await api.get("/w/main/schedules/list", params={"path_start": "u/admin/cr"})).json()
    assert [s["path"] for s in listed] == ["u/admin/crud"]
    by_runnable = await api.get("/w/main/schedules/list", params={"path": "u/admin/sched_crud"})
    assert [s["path"] for s in by_runnable.json()] == ["u/admin/crud"]
    by_args = await api.get("/w/main/schedules/list", params={"args": '{"label": "zz"}'})
    assert by_args.json() == []
    with_jobs = (await api.get("/w/main/schedules/list_with_jobs")).json()
    assert any(s["path"] == "u/admin/crud" and s["jobs"] == [] for s in with_jobs)

    r = await api.post(
        "/schedules/preview",
        json={"schedule": "0 0 9 * * *", "timezone": "America/New_York"},
    )
    assert r.status_code == 200, r.text
    times = [dt.datetime.fromisoformat(t) for t in r.json()]
    assert len(times) == 5 and all(t.astimezone(dt.UTC).hour in (13, 14) for t in times)
    r = await api.post("/schedules/preview", json={"schedule": "* * *", "timezone": "UTC"})
    assert r.status_code == 400 and "schedule: " in r.text
    r = await api.post("/schedules/preview", json={"schedule": "* * * * *", "timezone": "Nope"})
    assert r.status_code == 400 and "timezone: " in r.text

    r = await api.delete("/w/main/schedules/delete/u/admin/crud")
    assert r.status_code == 200, r.text
    assert (await api.get("/w/main/schedules/get/u/admin/crud")).status_code == 404


async def test_fires_every_second_with_its_path_and_tick(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await save_script(api, "u/admin/sched_echo", ECHO)
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/every_second",
            "schedule": "*/1 * * * * *",
            "timezone": "UTC",
            "script_path": "u/admin/sched_echo",
            "is_flow": False,
            "args": {"label": "tick"},
            "enabled": True,
        },
    )
    assert r.status_code == 201, r.text

    async def three() -> list[dict[str, Any]] | None:
        done = await runs(platform, "u/admin/every_second")
        return done if len(done) >= 3 else None

    done = await wait_until(three, timeout=15)
    await disable(api, "u/admin/every_second")
    ticks = [run["tick"] for run in done]
    # Consecutive seconds, each once.
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(ticks))
    for run in done:
        assert run["status"] == "success", run
        assert run["result"]["schedule"] == "u/admin/every_second"
        assert run["result"]["label"] == "tick"
        assert run["result"]["scheduled_for"] == run["tick"].astimezone(dt.UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
    got = await get(api, "u/admin/every_second")
    assert got["skipped_ticks"] == 0 and got["error"] is None
    # The job says what started it.
    job = (await api.get(f"/w/main/jobs_u/get/{done[0]['job_id']}")).json()
    assert job["schedule_path"] == "u/admin/every_second"
    with_jobs = (await api.get("/w/main/schedules/list_with_jobs")).json()
    mine = next(s for s in with_jobs if s["path"] == "u/admin/every_second")
    assert len(mine["jobs"]) >= 3 and all(j["success"] for j in mine["jobs"])


async def test_failure_and_recovery_handlers(api: httpx.AsyncClient, platform: Platform) -> None:
    await save_script(api, "u/admin/sched_flaky", FLAKY)
    await save_script(api, "u/admin/sched_on_failure", ON_FAILURE)
    await save_script(api, "u/admin/sched_on_recovery", ON_RECOVERY)
    settings = {
        "schedule": "*/1 * * * * *",
        "timezone": "UTC",
        "args": {"fail": True},
        "on_failure": "script/u/admin/sched_on_failure",
        "on_failure_times": 2,
        "on_failure_exact": True,
        "on_failure_extra_args": {"extra": "hello"},
        "on_recovery": "script/u/admin/sched_on_recovery",
    }
    r = await api.post(
        "/w/main/schedules/create",
        json={
            **settings,
            "path": "u/admin/flaky",
            "script_path": "u/admin/sched_flaky",
            "is_flow": False,
            "enabled": True,
        },
    )
    assert r.status_code == 201, r.text

    async def failures() -> bool:
        done = await runs(platform, "u/admin/flaky")
        return sum(run["status"] == "failure" for run in done) >= 3

    await wait_until(failures, timeout=15)
    # Now it succeeds.
    r = await api.post(
        "/w/main/schedules/update/u/admin/flaky", json={**settings, "args": {"fail": False}}
    )
    assert r.status_code == 200, r.text

    async def recovered() -> list[Any]:
        return await handler_results(platform, "u/admin/sched_on_recovery")

    recoveries = await wait_until(recovered, timeout=15)
    await disable(api, "u/admin/flaky")
    # on_failure_exact with 2: once, at the second failure in a row (not at the third).
    failed = await handler_results(platform, "u/admin/sched_on_failure")
    assert failed == [
        {
            "path": "u/admin/sched_flaky",
            "schedule_path": "u/admin/flaky",
            "failed_times": 2,
            "message": "boom",
            "extra": "hello",
        }
    ]
    assert recoveries[0]["schedule_path"] == "u/admin/flaky"
    assert recoveries[0]["success_result"] == "ok" and recoveries[0]["success_times"] == 1
    assert len(recoveries) == 1


async def test_no_flow_overlap_skips_and_records(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await save_script(api, "u/admin/sched_slow", SLOW)
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/slow",
            "schedule": "*/1 * * * * *",
            "timezone": "UTC",
            "script_path": "u/admin/sched_slow",
            "is_flow": False,
            "no_flow_overlap": True,
            "enabled": True,
        },
    )
    assert r.status_code == 201, r.text

    async def skipped() -> dict[str, Any] | None:
        got = await get(api, "u/admin/slow")
        done = await runs(platform, "u/admin/slow")
        return got if got["skipped_ticks"] >= 2 and done else None

    got = await wait_until(skipped, timeout=15)
    await disable(api, "u/admin/slow")
    assert "no_flow_overlap" in got["last_skip_reason"]
    # Never two runs at once: each tick run starts after the previous one ended.
    async with platform.db.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT c.started_at, c.completed_at FROM schedule_run r "
                "JOIN job_completed c ON c.id = r.job_id "
                "WHERE r.schedule_path = 'u/admin/slow' ORDER BY c.started_at"
            )
        ).fetchall()
    assert rows
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(rows))


async def test_missed_ticks_run_once_late_and_are_recorded(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await save_script(api, "u/admin/sched_late", ECHO)
    # Every minute; then, as if nothing had fired for five minutes, its next tick is put
    # five minutes back.
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/late",
            "schedule": "0 * * * * *",
            "timezone": "UTC",
            "script_path": "u/admin/sched_late",
            "is_flow": False,
            "enabled": True,
        },
    )
    assert r.status_code == 201, r.text
    async with platform.db.connection() as conn:
        row = await (
            await conn.execute(
                "UPDATE schedule SET next_tick = date_trunc('minute', now()) - interval '5 min' "
                "WHERE path = 'u/admin/late' RETURNING next_tick, date_trunc('minute', now())"
            )
        ).fetchone()
    assert row is not None
    old_tick, this_minute = row

    async def ran() -> list[dict[str, Any]]:
        return await runs(platform, "u/admin/late")

    done = await wait_until(ran, timeout=10)
    got = await get(api, "u/admin/late")
    await disable(api, "u/admin/late")
    # One run, for the old tick, carrying its time; not one per missed tick.
    assert len(done) == 1
    assert done[0]["tick"] == old_tick
    assert done[0]["result"]["scheduled_for"] == old_tick.astimezone(dt.UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )
    # The 5 ticks after it up to now were skipped, and say so.
    assert got["skipped_ticks"] == 5
    assert "5 tick(s)" in got["last_skip_reason"] and "missed" in got["last_skip_reason"]
    assert dt.datetime.fromisoformat(got["last_skip_at"]) >= this_minute
    # It goes on from the first tick after now.
    assert dt.datetime.fromisoformat(got["next_tick"]) > this_minute or got["next_tick"] is None


async def test_flow_schedule_and_a_runnable_gone(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await save_script(api, "u/admin/sched_step", ECHO)
    r = await api.post(
        "/w/main/flows/create",
        json={
            "path": "u/admin/sched_flow",
            "value": {
                "modules": [
                    {
                        "id": "a",
                        "value": {
                            "type": "script",
                            "path": "u/admin/sched_step",
                            "input_transforms": {
                                "label": {"type": "javascript", "expr": "flow_input.who"}
                            },
                        },
                    }
                ]
            },
            "schema": {"type": "object", "properties": {"who": {"type": "string"}}},
        },
    )
    assert r.status_code == 201, r.text
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/flow_every_second",
            "schedule": "* * * * * *",
            "timezone": "UTC",
            "script_path": "u/admin/sched_flow",
            "is_flow": True,
            "args": {"who": "flow"},
            "enabled": True,
        },
    )
    assert r.status_code == 201, r.text

    async def ran() -> list[dict[str, Any]] | None:
        done = await runs(platform, "u/admin/flow_every_second")
        return done if len(done) >= 2 else None

    done = await wait_until(ran, timeout=15)
    assert all(run["status"] == "success" for run in done), done
    assert done[0]["result"]["label"] == "flow"
    job = (await api.get(f"/w/main/jobs_u/get/{done[0]['job_id']}")).json()
    assert job["schedule_path"] == "u/admin/flow_every_second"

    # The flow goes away: the schedule stops, saying why (never a silent stop).
    r = await api.delete("/w/main/flows/delete/u/admin/sched_flow")
    assert r.status_code == 200, r.text

    async def stopped() -> dict[str, Any] | None:
        got = await get(api, "u/admin/flow_every_second")
        return got if not got["enabled"] else None

    got = await wait_until(stopped, timeout=10)
    assert "u/admin/sched_flow" in got["error"] and "disabled" in got["error"]
    assert got["next_tick"] is None
