"""A bounded stop (issue 15, point 3; docs/reliability.md, "Stopping"): real `gristmill up`
processes, real signals, callers waiting over real HTTP."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Api, GristmillProcess, Launcher, login, processes_using

pytestmark = pytest.mark.slow

#: The grace the tests set (GRISTMILL_SHUTDOWN_GRACE_S); the closing takes its last 2 s.
GRACE_S = 4.0
#: What a stop may take beyond the grace: the embedded Postgres's own stop, and a busy
#: machine's scheduling.
MARGIN_S = 4.0

# One attempt runs until it is stopped; a later attempt (after a restart) returns at once.
# The marker file outside the job directory needs an unsandboxed job.
ONCE_SLOW = """\
import os
import time


def main(marker: str, seconds: float):
    if os.path.exists(marker):
        return "later attempt"
    with open(marker, "w") as out:
        out.write("started")
    print("started", flush=True)
    time.sleep(seconds)
    return "first attempt"
"""
UNSANDBOXED = {"GRISTMILL_SANDBOX": "none"}


class _Call(threading.Thread):
    """A synchronous run waiting in its own thread, as a client would."""

    def __init__(self, api: Api, path: str, args: dict[str, object]) -> None:
        super().__init__(daemon=True)
        self.url = f"{api.url}/api{api.w}/jobs/run_wait_result/p/{path}"
        self.headers = {"Authorization": f"Bearer {api.token}"}
        self.args = args
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.response = httpx.post(self.url, json=self.args, headers=self.headers, timeout=60)
        except httpx.HTTPError as exc:
            self.error = exc

    def answer(self) -> httpx.Response:
        self.join(30)
        assert self.error is None, f"the caller lost its connection: {self.error!r}"
        assert self.response is not None, "no answer"
        return self.response


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture(scope="module")
def database(launcher: Launcher) -> GristmillProcess:
    """A platform without workers whose Postgres the servers under test share: their jobs
    can be read there after they exit."""
    return launcher.start("up", env={"NUM_WORKERS": "0"})


@pytest.fixture(scope="module")
def watcher(database: GristmillProcess) -> Iterator[Api]:
    api = _login(database)
    try:
        yield api
    finally:
        api.close()


def _server(launch: Launcher, database: GristmillProcess) -> GristmillProcess:
    """`gristmill up` on the shared database, its grace short, its jobs unsandboxed."""
    url = f"postgresql://postgres@/gristmill?host={database.data_dir / 'postgres'}"
    return launch.start(
        "up",
        env={**UNSANDBOXED, "DATABASE_URL": url, "GRISTMILL_SHUTDOWN_GRACE_S": str(GRACE_S)},
    )


def _login(process: GristmillProcess, email: str | None = None, password: str | None = None) -> Api:
    email = email or process.admin_email
    password = password or process.admin_password
    assert email and password, process.describe()
    return Api(process.local_url, login(process.local_url, email, password))


@pytest.mark.timeout(90)
def test_a_stop_answers_every_waiter_and_ends_within_the_grace(
    launch: Launcher, database: GristmillProcess, watcher: Api, tmp_path: Path
) -> None:
    up = _server(launch, database)
    api = _login(up, database.admin_email, database.admin_password)
    try:
        path = api.create_script(ONCE_SLOW)
        short, long = tmp_path / "short", tmp_path / "long"
        # Ends within the grace (its jobs get the grace but its last 2 s)...
        quick = _Call(api, path, {"marker": str(short), "seconds": 1.0})
        # ...and outlasts it.
        slow = _Call(api, path, {"marker": str(long), "seconds": 60})
        quick.start()
        slow.start()
        _wait_for(lambda: short.exists() and long.exists(), 20, "the jobs did not start")
        with httpx.Client(base_url=up.local_url) as kept_alive:
            assert kept_alive.get("/api/version").status_code == 200

            started = time.monotonic()
            up.proc.send_signal(signal.SIGTERM)
            _wait_for(lambda: "stopping" in up.stderr, 5, "no stop logged")
            # A new request, here on a kept-alive connection: refused, and the connection
            # closed.
            refused = kept_alive.get("/api/version")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert refused.headers["connection"] == "close"
        assert "stopping" in refused.text
        # The process is alive while it stops: its liveness probe still says so (readiness
        # is refused as any request, so a load balancer moves on).
        with httpx.Client(base_url=up.local_url) as probe:
            assert probe.get("/api/health/live").status_code == 200
            assert probe.get("/api/health/ready").status_code == 503

        code = up.wait_exit(GRACE_S + MARGIN_S + 5)
        took = time.monotonic() - started
    finally:
        api.close()
    assert code == 0, up.describe()
    print(f"stop with callers waiting: {took:.2f} s (grace {GRACE_S:g} s)")
    assert took < GRACE_S + MARGIN_S, f"the stop took {took:.1f} s\n{up.describe()}"
    assert "Traceback" not in up.stderr, up.stderr[-4000:]

    done = quick.answer()
    assert done.status_code == 200, done.text
    assert done.json() == "first attempt"

    cut = slow.answer()
    assert cut.status_code == 503, cut.text
    job_id = cut.headers["x-job-id"]
    assert job_id in cut.text and "get_result_maybe" in cut.text, cut.text
    assert cut.headers["retry-after"].isdigit()

    # The job the stop killed went back to the queue for another worker, its log kept.
    r = watcher.client.get(f"{watcher.w}/jobs_u/get/{job_id}")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["type"] == "QueuedJob" and job["running"] is False, job
    assert "started" in job["logs"] and "goes back to the queue" in job["logs"], job["logs"]


@pytest.mark.timeout(90)
def test_a_second_signal_forces_the_exit_and_loses_nothing(
    launch: Launcher, tmp_path: Path
) -> None:
    # A grace long enough that only the second signal can end the process in time.
    env = {**UNSANDBOXED, "GRISTMILL_SHUTDOWN_GRACE_S": "60", "ZOMBIE_JOB_TIMEOUT": "1"}
    up = launch.start("up", env=env)
    api = _login(up)
    marker = tmp_path / "marker"
    try:
        path = api.create_script(ONCE_SLOW)
        job_id = api.run_async(path, {"marker": str(marker), "seconds": 60})
        _wait_for(marker.exists, 20, "the job did not start")
    finally:
        api.close()

    up.proc.send_signal(signal.SIGINT)
    _wait_for(lambda: "stopping" in up.stderr, 5, "no stop logged")
    started = time.monotonic()
    up.proc.send_signal(signal.SIGINT)
    code = up.wait_exit(10)
    took = time.monotonic() - started
    assert code == 128 + signal.SIGINT, up.describe()
    print(f"exit after the second signal: {took:.2f} s")
    assert took < 10, f"the forced exit took {took:.1f} s\n{up.describe()}"
    forced = [line for line in up.stderr_lines if "second SIGINT" in line]
    assert len(forced) == 1, up.describe()
    assert "Traceback" not in up.stderr, up.stderr[-4000:]
    # The embedded Postgres stopped with it.
    _wait_for(lambda: processes_using(up.data_dir) == [], 5, "Postgres outlived the exit")

    # The job stayed running in the queue: the zombie monitor of the next start restarts it.
    again = launch.start("up", data_dir=up.data_dir, env=env)
    api = _login(again, up.admin_email, up.admin_password)
    try:
        job = api.wait_job(job_id, timeout=30)
    finally:
        api.close()
    assert job["success"] is True and job["result"] == "later attempt", job


@pytest.mark.timeout(90)
def test_a_stop_while_the_database_hangs_ends_within_the_grace(
    launch: Launcher, database: GristmillProcess, tmp_path: Path
) -> None:
    server = _server(launch, database)
    api = _login(server, database.admin_email, database.admin_password)
    marker = tmp_path / "marker"
    postgres: list[int] = []
    try:
        path = api.create_script(ONCE_SLOW)
        waiting = _Call(api, path, {"marker": str(marker), "seconds": 60})
        waiting.start()
        _wait_for(marker.exists, 20, "the job did not start")
        # The database stops answering (every Postgres process frozen): each statement and
        # each new connection hangs, as over a network that drops packets.
        postgres = [pid for pid, _ in processes_using(database.data_dir / "postgres")]
        assert postgres, "no Postgres found"
        for pid in postgres:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.wait_exit(GRACE_S + MARGIN_S + 10)
        took = time.monotonic() - started
    finally:
        for pid in postgres:
            os.kill(pid, signal.SIGCONT)
        api.close()
    assert code == 0, server.describe()
    print(f"stop with the database frozen: {took:.2f} s (grace {GRACE_S:g} s)")
    assert took < GRACE_S + MARGIN_S, f"the stop took {took:.1f} s\n{server.describe()}"
    cut = waiting.answer()
    assert cut.status_code == 503, cut.text
    assert cut.headers["x-job-id"] in cut.text, cut.text
