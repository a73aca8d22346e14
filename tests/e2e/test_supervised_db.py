"""The embedded Postgres of `gristmill up` is supervised: killed, it is reaped and restarted
(the readiness probe says so meanwhile) and the platform carries on; with no restart left,
`up` exits non-zero with one line saying what died and where to look.

Both tests share one data directory (one initdb); each starts its own `up`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from .conftest import Api, Launcher, free_port, login, process_alive

_ENV = {"GRISTMILL_WEBUI": "off", "NUM_WORKERS": "1"}


@pytest.fixture(scope="module")
def data_dir(launcher: Launcher) -> Path:
    return launcher.data_dir()


def _postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split("\n", 1)[0])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # gone: reaped
    return stat.rpartition(")")[2].split()[0] == "Z"


def _long_query(data_dir: Path) -> None:
    conninfo = f"host={data_dir / 'postgres'} port=5432 user=postgres dbname=postgres"
    with contextlib.suppress(psycopg.Error), psycopg.connect(conninfo) as conn:
        conn.execute("SELECT count(*) FROM generate_series(1, 10000000000)")


def _checks(body: dict[str, Any]) -> dict[str, bool]:
    return {c["name"]: c["ok"] for c in body["checks"]}


def _wait_ready_status(url: str, status: int, timeout: float) -> httpx.Response:
    """Poll the readiness probe until it answers ``status``; each probe must answer
    within the 1 s the probe promises (with a margin for this busy machine)."""
    deadline = time.monotonic() + timeout
    seen: list[int] = []
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/api/health/ready", timeout=3)
        seen.append(r.status_code)
        if r.status_code == status:
            return r
        time.sleep(0.05)
    raise AssertionError(f"readiness never answered {status} within {timeout} s: {seen[-20:]}")


def test_killed_postgres_is_reaped_restarted_and_used_again(
    launcher: Launcher, data_dir: Path
) -> None:
    up = launcher.start("up", data_dir=data_dir, env=_ENV)
    url = up.local_url
    assert up.admin_email and up.admin_password, up.describe()
    api = Api(url, login(url, up.admin_email, up.admin_password))
    try:
        path = api.create_script("def main(x: int):\n    return x + 1\n")
        _wait_ready_status(url, 200, 20)
        # A worker-only process on the same data directory, with its probes on a port: it
        # does not own the database and must find the restarted one by itself. Without
        # workers of its own (their toolchain probes cost seconds; the workers check is
        # tested in tests/integration/test_health.py).
        health_port = free_port()
        worker = launcher.start(
            "worker",
            data_dir=data_dir,
            env={**_ENV, "NUM_WORKERS": "0", "GRISTMILL_HEALTH_PORT": str(health_port)},
        )
        worker_url = f"http://127.0.0.1:{health_port}"
        assert httpx.get(f"{worker_url}/api/health/live", timeout=3).status_code == 200
        assert _checks(_wait_ready_status(worker_url, 200, 20).json()) == {
            "database": True,
            "migrations": True,
        }
        first = _postmaster_pid(data_dir)
        # A backend busy in a long query outlives its postmaster (it checks for its death
        # only when it waits), holding the old shared memory: the restart must end it.
        busy = threading.Thread(target=_long_query, args=(data_dir,), daemon=True)
        busy.start()
        time.sleep(0.5)

        os.kill(first, signal.SIGKILL)
        down = _wait_ready_status(url, 503, 10).json()
        assert "database" in down["failed"], down
        assert not down["ready"]
        up_again = _wait_ready_status(url, 200, 60).json()
        assert up_again["failed"] == [], up_again
        # The other process (which does not own the database) finds it again too.
        _wait_ready_status(worker_url, 200, 30)

        # Reaped by `up` at once: no zombie keeps the dead postmaster's pid.
        assert not _is_zombie(first), f"the killed postmaster {first} is a zombie"
        second = _postmaster_pid(data_dir)
        assert second != first
        assert process_alive(second)
        assert "died (killed by signal 9 (SIGKILL))" in up.stderr, up.describe()
        assert "the embedded Postgres is running again" in up.stderr, up.describe()
        # At the first attempt: the busy backend was ended, not waited for.
        assert "restarting the embedded Postgres failed" not in up.stderr, up.describe()

        # The pool, the notifications and the worker use the new server by themselves.
        job = api.wait_job(api.run_async(path, {"x": 41}), timeout=60)
        assert job["success"] and job["result"] == 42, job
        deadline = time.monotonic() + 15
        while "notification connection restored" not in up.stderr:
            assert time.monotonic() < deadline, f"LISTEN never reconnected\n{up.describe()}"
            time.sleep(0.1)
    finally:
        api.close()
    code, _ = worker.terminate()
    assert code == 0, worker.describe()
    code, _ = up.terminate()
    assert code == 0, up.describe()
    assert not process_alive(second), "the restarted Postgres outlived `up`"


def test_up_exits_with_one_line_when_no_restart_is_left(launcher: Launcher, data_dir: Path) -> None:
    up = launcher.start(
        "up", data_dir=data_dir, env={**_ENV, "NUM_WORKERS": "0", "GRISTMILL_PG_MAX_RESTARTS": "0"}
    )
    pid = _postmaster_pid(data_dir)
    os.kill(pid, signal.SIGKILL)
    code = up.wait_exit(40)
    assert code is not None, f"`up` still runs after its Postgres died\n{up.describe()}"
    assert code != 0
    last = up.stderr_lines[-1]
    assert last.startswith("Error: the embedded Postgres in "), up.describe()
    assert "killed by signal 9" in last
    assert "GRISTMILL_PG_MAX_RESTARTS=0" in last
    assert str(data_dir / "postgres.log") in last
    assert not _is_zombie(pid)
    _restart_despite_a_reused_pid(data_dir, pid)


def _restart_despite_a_reused_pid(data_dir: Path, dead_pid: int) -> None:
    """The restart path on the cluster `up` left crashed: its lock file names the dead
    postmaster, whose pid another process has taken meanwhile (simulated: the lock is made
    to name a live `sleep`). Postgres alone refuses such a lock file; the restart clears it."""
    from gristmill.db.embedded import EmbeddedPostgres

    lock = data_dir / "postgres" / "postmaster.pid"
    assert _postmaster_pid(data_dir) == dead_pid  # left behind by the killed server
    # As the server's own user (`nobody` under root): Postgres ignores a lock naming a
    # process of another user, which cannot be a postmaster of this data directory.
    user = "nobody" if os.geteuid() == 0 else None
    with subprocess.Popen(["sleep", "60"], user=user) as squatter:
        try:
            lines = lock.read_text().split("\n")
            lock.write_text("\n".join([str(squatter.pid), *lines[1:]]))
            server = EmbeddedPostgres(data_dir)
            server.respawn(squatter.pid)
            try:
                server.wait_ready(60)
                assert _postmaster_pid(data_dir) == server.process.pid  # type: ignore[union-attr]
            finally:
                server.stop()
        finally:
            squatter.kill()
