"""A worker killed in the middle of a flow loses nothing (issue 12, recovery): the real
`gristmill up` (API and zombie monitor, no workers) and separate `gristmill worker`
processes, one of them killed with SIGKILL while it runs the flow's second step."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from .conftest import Api, Launcher, login

pytestmark = pytest.mark.slow

# Each step appends its name to a file outside its job directory (the jobs run unsandboxed
# for that), so the test counts how many times each ran. Step b sleeps on its first attempt
# only: the worker is killed then, and the zombie restart runs it again.
STEP = """\
import time


def main(log: str, name: str, value: int):
    with open(log, "a") as out:
        out.write(name + "\\n")
    with open(log) as seen:
        runs = seen.read().split().count(name)
    if name == "b" and runs == 1:
        print("b sleeps", flush=True)
        time.sleep(120)
    return value + 1
"""


def _step(name: str, value: str) -> dict[str, object]:
    return {
        "id": name,
        "value": {
            "type": "rawscript",
            "language": "python3",
            "content": STEP,
            "input_transforms": {
                "log": {"type": "javascript", "expr": "flow_input.log"},
                "name": {"type": "static", "value": name},
                "value": {"type": "javascript", "expr": value},
            },
        },
    }


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (its job's interpreter), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


@pytest.mark.timeout(90)
def test_a_worker_killed_mid_flow_loses_nothing(launch: Launcher) -> None:
    unsandboxed = {"GRISTMILL_SANDBOX": "none"}
    # The monitor looks every second (a quarter of ZOMBIE_JOB_TIMEOUT, at least 1 s).
    main = launch.start("up", env={**unsandboxed, "NUM_WORKERS": "0", "ZOMBIE_JOB_TIMEOUT": "3"})
    worker_env = {
        **unsandboxed,
        "MODE": "worker",
        "NUM_WORKERS": "1",
        "BASE_INTERNAL_URL": main.local_url,
        "GRISTMILL_HEARTBEAT_S": "0.5",
    }
    first = launch.start("worker", data_dir=main.data_dir, env=worker_env)
    assert main.admin_email and main.admin_password, main.describe()
    api = Api(main.local_url, login(main.local_url, main.admin_email, main.admin_password))
    log = launch.data_dir() / "runs.log"
    try:
        value = {
            "modules": [
                _step("a", "flow_input.n"),
                _step("b", "results.a"),
                _step("c", "results.b"),
            ]
        }
        r = api.client.post(
            f"{api.w}/jobs/run/preview_flow",
            json={"value": value, "args": {"log": str(log), "n": 1}},
        )
        assert r.status_code == 201, r.text
        flow_id = r.text

        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_text().split() == ["a", "b"]):
            assert time.monotonic() < deadline, (log.exists() and log.read_text(), first.describe())
            time.sleep(0.05)
        status = api.update(flow_id)["flow_status"]
        b_job = status["modules"][1]["job"]
        api.wait_logs(b_job, "b sleeps", timeout=15)

        # SIGKILL: no requeue, no goodbye; its job's process dies with it (as on a lost host).
        victims = [first.pid, *_descendants(first.pid)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        first.wait_exit(10)
        second = launch.start("worker", data_dir=main.data_dir, env=worker_env)

        flow = api.wait_job(flow_id, timeout=40)
        assert flow["success"] is True, (flow["result"], second.describe(), main.describe())
        assert flow["result"] == 4  # 1 + 1 + 1 + 1
        # a and c ran once, b twice: its first attempt killed, its zombie restart.
        assert log.read_text().split() == ["a", "b", "b", "c"]
        children = api.client.get(f"{api.w}/jobs/list", params={"parent_job": flow_id}).json()
        assert len(children) == 3, children  # one job per step: b's restart is the same job
        b = api.client.get(f"{api.w}/jobs_u/get/{b_job}").json()
        assert b["success"] is True and b["result"] == 3
        assert [m["type"] for m in flow["flow_status"]["modules"]] == ["Success"] * 3
        assert "restarted" in main.stdout + main.stderr, main.describe()
    finally:
        api.close()
