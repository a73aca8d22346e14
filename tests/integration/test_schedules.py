"""Schedules for real (Postgres, the platform's ticker, workers, Python scripts): the API
with its checks, firing every second, handlers, no_flow_overlap, the missed-tick policy, a
flow schedule (docs/triggers.md "Schedules")."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid
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
ON_FAILURE_JOB = "def main(job_id: str, failed_times: int):\n    return job_id\n"
ON_SUCCESS = "def main(success_result: str, schedule_path: str):\n    return success_result\n"
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

    # Paused until a date (no offset: UTC): the next tick is the first one from then.
    r = await api.post(
        "/w/main/schedules/update/u/admin/crud",
        json={**edit, "schedule": "0 30 6 * * MON-FRI", "paused_until": "2030-01-01T00:00:00"},
    )
    assert r.status_code == 200, r.text
    got = await get(api, "u/admin/crud")
    assert dt.datetime.fromisoformat(got["paused_until"]) == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    # 2030-01-01 is a Tuesday; 06:30 in Paris is 05:30 UTC in winter.
    assert dt.datetime.fromisoformat(got["next_tick"]) == dt.datetime(
        2030, 1, 1, 5, 30, tzinfo=dt.UTC
    )

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

    await wait_until(three, timeout=15)
    await disable(api, "u/admin/every_second")

    async def settled() -> list[dict[str, Any]] | None:
        async with platform.db.connection() as conn:
            pending = await (
                await conn.execute(
                    "SELECT count(*) FROM schedule_run WHERE schedule_path = %s "
                    "AND handled_at IS NULL",
                    ("u/admin/every_second",),
                )
            ).fetchone()
        return await runs(platform, "u/admin/every_second") if pending == (0,) else None

    done = await wait_until(settled, timeout=15)
    got = await get(api, "u/admin/every_second")
    ticks = [run["tick"] for run in done]
    # Each tick once; consecutive seconds, but for the ticks recorded as skipped (a loaded
    # machine may leave a run unstarted at the next tick): never a silent gap.
    assert len(set(ticks)) == len(ticks)
    span = int((ticks[-1] - ticks[0]).total_seconds()) + 1
    assert span - len(ticks) <= got["skipped_ticks"], (ticks, got)
    assert got["skipped_ticks"] == 0 or "had not started" in got["last_skip_reason"]
    for run in done:
        assert run["status"] == "success", run
        assert run["result"]["schedule"] == "u/admin/every_second"
        assert run["result"]["label"] == "tick"
        assert run["result"]["scheduled_for"] == run["tick"].astimezone(dt.UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
    assert got["error"] is None
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
    await save_script(api, "u/admin/sched_on_success_ok", ON_SUCCESS)
    settings = {
        "schedule": "*/1 * * * * *",
        "timezone": "UTC",
        "args": {"fail": True},
        "on_failure": "script/u/admin/sched_on_failure",
        "on_failure_times": 2,
        "on_failure_exact": True,
        "on_failure_extra_args": {"extra": "hello"},
        "on_recovery": "script/u/admin/sched_on_recovery",
        "on_success": "script/u/admin/sched_on_success_ok",
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
    # on_success: for each successful run (none before the recovery).
    successes = await wait_until(
        lambda: handler_results(platform, "u/admin/sched_on_success_ok"), timeout=5
    )
    assert successes and set(successes) == {"ok"}


async def test_retry_then_handler_on_the_last_attempt_and_on_success(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    await save_script(api, "u/admin/sched_retried", FLAKY)
    await save_script(api, "u/admin/sched_on_failure_job", ON_FAILURE_JOB)
    await save_script(api, "u/admin/sched_on_success", ON_SUCCESS)
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/retried",
            "schedule": "*/1 * * * * *",
            "timezone": "UTC",
            "script_path": "u/admin/sched_retried",
            "is_flow": False,
            "args": {"fail": True},
            "retry": {"constant": {"attempts": 2, "seconds": 0}},
            "on_failure": "script/u/admin/sched_on_failure_job",
            "on_success": "script/u/admin/sched_on_success",
            "enabled": True,
        },
    )
    assert r.status_code == 201, r.text

    async def first_tick_done() -> list[dict[str, Any]] | None:
        done = await runs(platform, "u/admin/retried")
        first = [run for run in done if run["tick"] == done[0]["tick"]] if done else []
        return first if len(first) == 3 else None

    first = await wait_until(first_tick_done, timeout=15)
    # The tick ran 3 times (2 retries), each failing.
    assert [run["attempt"] for run in first] == [0, 1, 2]
    assert all(run["status"] == "failure" for run in first)

    async def handled() -> list[Any]:
        return await handler_results(platform, "u/admin/sched_on_failure_job")

    # on_failure once the retries are spent: for the last attempt's job.
    handled_jobs = await wait_until(handled, timeout=10)
    await disable(api, "u/admin/retried")
    assert handled_jobs[0] == str(first[2]["job_id"])
    attempts = {str(run["job_id"]) for run in first[:2]}
    assert not attempts & set(await handler_results(platform, "u/admin/sched_on_failure_job"))
    assert await handler_results(platform, "u/admin/sched_on_success") == []


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


async def test_a_run_recorded_but_never_queued_is_queued_once(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    """A process that stopped between recording a tick and queueing its job: another pass
    queues it, with the id recorded (so never twice)."""
    await save_script(api, "u/admin/sched_lost", ECHO)
    r = await api.post(
        "/w/main/schedules/create",
        json={
            "path": "u/admin/lost",
            "schedule": "0 0 0 1 1 *",
            "timezone": "UTC",
            "script_path": "u/admin/sched_lost",
            "is_flow": False,
        },
    )
    assert r.status_code == 201, r.text
    job_id = uuid.uuid4()
    tick = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    async with platform.db.connection() as conn:
        await conn.execute(
            "INSERT INTO schedule_run (workspace_id, schedule_path, tick, attempt, job_id, "
            "runnable_path, is_flow, created_at) VALUES ('main', 'u/admin/lost', %s, 0, %s, "
            "'u/admin/sched_lost', false, now() - interval '1 min')",
            (tick, job_id),
        )

    async def ran() -> list[dict[str, Any]]:
        return await runs(platform, "u/admin/lost")

    done = await wait_until(ran, timeout=10)
    assert [run["job_id"] for run in done] == [job_id]
    assert done[0]["result"]["scheduled_for"] == "2026-01-01 00:00:00 UTC"
    async with platform.db.connection() as conn:
        row = await (
            await conn.execute("SELECT pushed_at FROM schedule_run WHERE job_id = %s", (job_id,))
        ).fetchone()
    assert row is not None and row[0] is not None


async def test_windmill_cli_payloads(api: httpx.AsyncClient) -> None:
    """What `wmill schedule push` / `wmill sync push` send: a pulled schedule file (nulls,
    fields the server fills) to create, then to update with the path and runnable again;
    read back, the file's fields are unchanged (the CLI's "up to date" test)."""
    await save_script(api, "u/admin/sched_cli", ECHO)
    local: dict[str, Any] = {
        "schedule": "0 */5 * * * *",
        "timezone": "Europe/Berlin",
        "script_path": "u/admin/sched_cli",
        "is_flow": False,
        "args": {"label": "cli"},
        "enabled": False,
        "summary": None,
        "description": "",
        "on_failure": None,
        "on_failure_times": None,
        "on_failure_exact": None,
        "on_failure_extra_args": None,
        "on_recovery": None,
        "on_recovery_times": None,
        "on_recovery_extra_args": None,
        "on_success": None,
        "on_success_extra_args": None,
        "ws_error_handler_muted": False,
        "retry": None,
        "no_flow_overlap": False,
        "tag": None,
        "paused_until": None,
        "cron_version": "v2",
        # Sent by older pulls; the server fills these itself.
        "email": "someone@example.com",
        "edited_by": "someone",
        "extra_perms": {},
    }
    r = await api.post("/w/main/schedules/create", json={"path": "u/admin/cli", **local})
    assert r.status_code == 201, r.text
    got = await get(api, "u/admin/cli")
    server_filled = {"email", "edited_by", "extra_perms"}
    assert {k: got[k] for k in local if k not in server_filled} == {
        k: v for k, v in local.items() if k not in server_filled
    }
    local["schedule"] = "0 */10 * * * *"
    r = await api.post(
        "/w/main/schedules/update/u/admin/cli", json={"path": "u/admin/cli", **local}
    )
    assert r.status_code == 200, r.text
    r = await api.post("/w/main/schedules/setenabled/u/admin/cli", json={"enabled": True})
    assert r.status_code == 200, r.text
    got = await get(api, "u/admin/cli")
    assert got["schedule"] == "0 */10 * * * *" and got["enabled"] is True
    assert got["email"] != "someone@example.com"
    r = await api.delete("/w/main/schedules/delete/u/admin/cli")
    assert r.status_code == 200, r.text
