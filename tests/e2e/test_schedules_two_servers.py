"""Two real server processes on one database fire a schedule's every tick exactly once: the
real `gristmill up` (API, ticker, workers, its embedded Postgres) and a second `gristmill
server` (API and ticker) on the same database, both ticking (docs/triggers.md
"Schedules")."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from .conftest import Api, Launcher, login

pytestmark = pytest.mark.slow

TICK = (
    "import os\n"
    "def main():\n"
    "    return {'tick': os.environ['WM_SCHEDULED_FOR'],\n"
    "            'schedule': os.environ['WM_SCHEDULE_PATH']}\n"
)


@pytest.mark.timeout(90)
def test_each_tick_fires_once_with_two_servers(launch: Launcher) -> None:
    quiet = {"GRISTMILL_WEBUI": "off"}
    main = launch.start("up", env=quiet)
    # The same data directory: the second process uses the Postgres the first one started.
    second = launch.start("server", data_dir=main.data_dir, env=quiet)
    assert main.admin_email and main.admin_password, main.describe()
    api = Api(main.local_url, login(main.local_url, main.admin_email, main.admin_password))
    other = Api(second.local_url, api.token)
    try:
        api.create_script(TICK, path="u/admin/two_servers_tick")
        # Created through the second server: both serve the same schedules.
        r = other.client.post(
            f"{other.w}/schedules/create",
            json={
                "path": "u/admin/two_servers",
                "schedule": "*/1 * * * * *",
                "timezone": "UTC",
                "script_path": "u/admin/two_servers_tick",
                "is_flow": False,
                "enabled": True,
            },
        )
        assert r.status_code == 201, r.text
        time.sleep(6.5)
        r = api.client.post(
            f"{api.w}/schedules/setenabled/u/admin/two_servers", json={"enabled": False}
        )
        assert r.status_code == 200, r.text

        # Every run queued by then ends.
        deadline = time.monotonic() + 20
        while True:
            r = api.client.get(
                f"{api.w}/jobs/queue/list", params={"script_path_exact": "u/admin/two_servers_tick"}
            )
            assert r.status_code == 200, r.text
            if not r.json():
                break
            assert time.monotonic() < deadline, r.json()
            time.sleep(0.2)
        r = api.client.get(
            f"{api.w}/jobs/completed/list",
            params={"script_path_exact": "u/admin/two_servers_tick", "per_page": 100},
        )
        assert r.status_code == 200, r.text
        jobs = r.json()
        ticks = []
        for job in jobs:
            assert job["success"], job
            result = api.client.get(f"{api.w}/jobs_u/completed/get_result/{job['id']}").json()
            assert result["schedule"] == "u/admin/two_servers"
            ticks.append(dt.datetime.strptime(result["tick"], "%Y-%m-%d %H:%M:%S UTC"))
        ticks.sort()
        # At least 5 ticks in ~6.5 s, each exactly once, none missing in between but those
        # recorded as skipped (a loaded machine may leave a run unstarted at the next tick).
        assert len(ticks) >= 5, (ticks, main.describe(), second.describe())
        assert len(set(ticks)) == len(ticks), ticks
        schedule = api.client.get(f"{api.w}/schedules/get/u/admin/two_servers").json()
        span = int((ticks[-1] - ticks[0]).total_seconds()) + 1
        assert span - len(ticks) <= schedule["skipped_ticks"], (ticks, schedule)
    finally:
        api.close()
        other.close()
