"""Starting, stopping and combining `gristmill` processes."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import httpx
import pytest

from .conftest import (
    GRISTMILL,
    Api,
    Launcher,
    clean_env,
    closed_port,
    free_port,
    login,
    processes_using,
)

pytestmark = pytest.mark.slow

SLOW_PID = """\
import os
import time


def main(i: int):
    time.sleep(0.3)
    return {"i": i, "pid": os.getpid()}
"""

ENV_REPORT = """\
import json
import os
import urllib.request


def main():
    request = urllib.request.Request(
        os.environ["BASE_INTERNAL_URL"] + "/api/users/whoami",
        headers={"Authorization": "Bearer " + os.environ["WM_TOKEN"]},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        whoami = json.load(response)
    return {"whoami": whoami, "job_id": os.environ["WM_JOB_ID"], "env": dict(os.environ)}
"""


def _worker_pid(worker: str | None) -> int | None:
    """The process id in a worker name (wk-<group>-<host>-<pid>-<n>)."""
    if not worker:
        return None
    parts = worker.split("-")
    return int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else None


# -- 10. SIGTERM and restart ---------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_sigterm_stops_everything_and_a_restart_keeps_state(launch: Launcher) -> None:
    first = launch.start("up")
    assert first.admin_email and first.admin_password, first.describe()
    token = login(first.local_url, first.admin_email, first.admin_password)
    api = Api(first.local_url, token)
    try:
        path = api.create_script("def main(x: int = 1):\n    return x * 10\n", "u/admin/kept")
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={"x": 4})
        assert r.status_code == 200 and r.json() == 40, r.text
    finally:
        api.close()
    assert processes_using(first.data_dir), "the embedded Postgres should be running"

    code, took = first.terminate(timeout=25)
    assert took < 20, f"SIGTERM took {took:.1f} s\n{first.describe()}"
    assert code == 0, first.describe()
    assert "Traceback" not in first.stderr, first.stderr[-4000:]
    deadline = time.monotonic() + 3
    while processes_using(first.data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_using(first.data_dir) == []
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{first.local_url}/api/version", timeout=2)

    second = launch.start("up", data_dir=first.data_dir)
    assert "password:" not in second.stdout, second.stdout
    assert second.admin_password is None
    # The first admin's password still works; the saved script is still there.
    token = login(second.local_url, first.admin_email, first.admin_password)
    api = Api(second.local_url, token)
    try:
        got = api.client.get(f"{api.w}/scripts/get/p/u/admin/kept")
        assert got.status_code == 200, got.text
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/u/admin/kept", json={"x": 5})
        assert r.status_code == 200 and r.json() == 50, r.text
    finally:
        api.close()
    # Ctrl-C stops it as SIGTERM does.
    code, took = second.terminate(timeout=25, sig=signal.SIGINT)
    assert code == 0 and took < 20, second.describe()
    assert processes_using(first.data_dir) == []


# -- 11. database down at start ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_unreachable_database_fails_clearly(launch: Launcher) -> None:
    port = closed_port()
    data_dir = launch.data_dir()
    start = time.monotonic()
    done = subprocess.run(
        [str(GRISTMILL), "up"],
        env=clean_env(
            GRISTMILL_DATA_DIR=str(data_dir),
            PORT=str(free_port()),
            DATABASE_URL=f"postgresql://user@127.0.0.1:{port}/db",
            GRISTMILL_DB_WAIT_S="2",
        ),
        capture_output=True,
        text=True,
        timeout=40,
        stdin=subprocess.DEVNULL,
    )
    took = time.monotonic() - start
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert took < 20, took
    assert "127.0.0.1" in output and str(port) in output, output
    assert "DATABASE_URL" in output, output
    assert "Traceback" not in output, output
    assert "is ready" not in done.stdout


# -- 7 (second half). the server's secrets never reach a job -------------------------------------


@pytest.mark.timeout(120)
def test_job_environment_has_no_server_secrets(launch: Launcher) -> None:
    # A platform with no workers of its own provides the database...
    database = launch.start("up", env={"NUM_WORKERS": "0"})
    # No workers, no runtimes to report.
    assert not any(line.startswith("runtime ") for line in database.stdout_lines)
    pgdata = database.data_dir / "postgres"
    database_url = f"postgresql://postgres@/gristmill?host={pgdata}"
    secret = "e2e-superadmin-secret-0123456789"
    # ...and a second one, configured as in production, runs the jobs.
    server = launch.start(
        "up", env={"DATABASE_URL": database_url, "SUPERADMIN_SECRET": secret, "NUM_WORKERS": "1"}
    )
    assert "password:" not in server.stdout  # the admin already exists
    api = Api(server.local_url, secret)
    try:
        who = api.client.get("/users/whoami")
        assert who.status_code == 200 and who.json()["super_admin"] is True, who.text
        path = api.create_script(ENV_REPORT)
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={})
        assert r.status_code == 200, r.text
        out = r.json()
        job_id = r.headers["x-job-id"]
        job = api.client.get(f"{api.w}/jobs_u/get/{job_id}").json()
        assert _worker_pid(job["worker"]) == server.pid, job["worker"]
    finally:
        api.close()
    assert out["job_id"] == job_id
    assert out["whoami"]["job_id"] == job_id
    env = out["env"]
    assert "DATABASE_URL" not in env
    assert "SUPERADMIN_SECRET" not in env
    assert "GRISTMILL_DATA_DIR" not in env
    assert not any(secret in value for value in env.values()), env
    assert not any(str(pgdata) in value for value in env.values()), env


# -- 12. a separate worker process on the same database ------------------------------------------


@pytest.mark.timeout(120)
def test_separate_worker_process_shares_the_queue(launch: Launcher) -> None:
    main = launch.start("up")
    worker = launch.start(
        "worker",
        data_dir=main.data_dir,
        # A worker whose Bun is misconfigured says so at start, with the fix, and serves on.
        env={"MODE": "worker", "BASE_INTERNAL_URL": main.local_url, "BUN_PATH": "/nowhere/bun"},
    )
    assert "password:" not in worker.stdout
    assert (
        "runtime bun: not available: BUN_PATH=/nowhere/bun is not an executable file: point "
        "BUN_PATH to the `bun` binary, or unset it"
    ) in worker.stdout_lines, worker.describe()
    assert any(line.startswith("runtime python3: ready (3.") for line in worker.stdout_lines)
    assert main.admin_email and main.admin_password
    api = Api(main.local_url, login(main.local_url, main.admin_email, main.admin_password))
    try:
        path = api.create_script(SLOW_PID)
        job_ids = [api.run_async(path, {"i": i}) for i in range(20)]
        jobs = [api.wait_job(job_id, timeout=60) for job_id in job_ids]
        assert all(job["success"] for job in jobs), [j for j in jobs if not j["success"]]
        assert sorted(job["result"]["i"] for job in jobs) == list(range(20))
        by_process = {_worker_pid(job["worker"]) for job in jobs}
        assert worker.pid in by_process, (by_process, worker.pid, main.pid)
        assert by_process <= {worker.pid, main.pid}, by_process
        assert main.proc.poll() is None, main.describe()
        assert worker.proc.poll() is None, worker.describe()

        # Stopping the worker leaves the platform (and its Postgres) running.
        code, took = worker.terminate(timeout=25)
        assert code == 0 and took < 20, worker.describe()
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={"i": 99})
        assert r.status_code == 200, r.text
        assert r.json()["i"] == 99
    finally:
        api.close()
    assert main.proc.poll() is None, main.describe()


# -- more stopping: a running job, a separate worker that owns the database, a lost database ------

INTERRUPTIBLE = """\
import os
import time


def main(marker: str):
    if os.path.exists(marker):
        print("second attempt")
        return "second attempt"
    with open(marker, "w") as out:
        out.write("started")
    print("first attempt", flush=True)
    time.sleep(60)
    return "first attempt finished"
"""


@pytest.mark.timeout(120)
def test_sigterm_requeues_a_running_job_which_a_restart_finishes(launch: Launcher) -> None:
    # The job tells its attempts apart by a marker file outside its job directory: only an
    # unsandboxed job can leave one (requeueing, not isolation, is under test here).
    unsandboxed = {"GRISTMILL_SANDBOX": "none"}
    # The job outlasts the grace (short: the test's time), then is requeued.
    first = launch.start("up", env={**unsandboxed, "GRISTMILL_SHUTDOWN_GRACE_S": "3"})
    assert first.admin_email and first.admin_password
    marker = launch.data_dir() / "marker"
    api = Api(first.local_url, login(first.local_url, first.admin_email, first.admin_password))
    try:
        path = api.create_script(INTERRUPTIBLE)
        job_id = api.run_async(path, {"marker": str(marker)})
        api.wait_logs(job_id, "first attempt", timeout=15)
    finally:
        api.close()

    code, took = first.terminate(timeout=30)
    assert took < 20, f"SIGTERM with a running job took {took:.1f} s\n{first.describe()}"
    assert code == 0, first.describe()
    assert processes_using(first.data_dir) == []

    second = launch.start("up", data_dir=first.data_dir, env=unsandboxed)
    api = Api(second.local_url, login(second.local_url, first.admin_email, first.admin_password))
    try:
        job = api.wait_job(job_id, timeout=30)
    finally:
        api.close()
    assert job["success"] is True, job
    assert job["result"] == "second attempt"
    logs = job["logs"]
    assert "first attempt" in logs and "second attempt" in logs, logs
    # The log says what happened in between (docs/deploy.md, "Stopping").
    assert logs.index("first attempt") < logs.index("goes back to the queue"), logs
    assert logs.index("goes back to the queue") < logs.index("second attempt"), logs


@pytest.mark.timeout(120)
def test_a_worker_waits_for_the_platform_and_never_owns_its_database(launch: Launcher) -> None:
    """A worker uses the embedded database of the `gristmill up` of its data directory: it
    waits for it, and stopping the worker leaves the platform's database alone."""
    lonely = launch.start("worker", env={"GRISTMILL_DB_WAIT_S": "2"}, wait=False)
    code = lonely.wait_exit(30)
    assert code is not None and code != 0, lonely.describe()
    assert "gristmill up" in lonely.stdout + lonely.stderr, lonely.describe()
    assert "Traceback" not in lonely.stdout + lonely.stderr, lonely.describe()
    assert processes_using(lonely.data_dir) == []

    main = launch.start("up", data_dir=lonely.data_dir)
    worker = launch.start("worker", data_dir=main.data_dir)
    email, password = main.admin_email, main.admin_password
    assert email and password, main.describe()
    api = Api(main.local_url, login(main.local_url, email, password))
    try:
        path = api.create_script("def main(x: int):\n    return x + 1\n")
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={"x": 1})
        assert r.status_code == 200 and r.json() == 2, r.text
        code, took = worker.terminate(timeout=25)
        assert code == 0 and took < 20, worker.describe()
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={"x": 2}, timeout=8)
        assert r.status_code == 200 and r.json() == 3, (r.text, main.stderr[-3000:])
    finally:
        api.close()


@pytest.mark.timeout(120)
def test_sigterm_is_prompt_when_the_database_is_gone(launch: Launcher) -> None:
    database = launch.start("up", env={"NUM_WORKERS": "0"})
    database_url = f"postgresql://postgres@/gristmill?host={database.data_dir / 'postgres'}"
    server = launch.start("up", env={"DATABASE_URL": database_url})
    code, _ = database.terminate(timeout=25)
    assert code == 0, database.describe()
    time.sleep(1)  # the server notices its database is gone

    code, took = server.terminate(timeout=21)
    assert took < 20, f"SIGTERM took {took:.1f} s without a database\n{server.describe()}"
    assert code == 0, server.describe()


@pytest.mark.timeout(90)
def test_port_in_use_fails_clearly(launch: Launcher) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = launch.start("up", port=port, wait=False)
        code = process.wait_exit(45)
    assert code is not None, f"`gristmill up` kept running on a taken port\n{process.describe()}"
    assert code != 0, process.describe()
    output = process.stdout + process.stderr
    assert "is ready" not in process.stdout
    assert "Traceback" not in output, process.describe()
    assert str(port) in output, process.describe()
    assert "PORT" in output, process.describe()  # how to fix it
    assert processes_using(process.data_dir) == []
