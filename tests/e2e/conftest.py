"""End-to-end fixtures: the real `gristmill` command, started as a user would start it.

Every process gets an explicit environment (never the test process's own: the pytest plugin
of gristmill.testing puts GRISTMILL_DATA_DIR there) and a fresh data directory under /tmp
that `nobody` (the embedded Postgres's user when running as root) can reach.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gristmill.testing.chaos import PRODUCT_VARIABLES
from gristmill.testing.pytest_plugin import share_etc_copies

GRISTMILL = Path(sys.executable).parent / "gristmill"
READY = "Gristmill is ready at "
WORKER_READY = "Gristmill worker ready"


def clean_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without any Gristmill setting, plus ``overrides``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GRISTMILL_") and k not in PRODUCT_VARIABLES
    }
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    return free_port()


def make_data_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="gm-e2e-", dir="/tmp"))
    path.chmod(0o755)
    # The session's copies of the sandbox's /etc: a process's start then makes none.
    share_etc_copies(path)
    return path


def processes_using(path: Path) -> list[tuple[int, str]]:
    """Processes whose command line mentions ``path`` or whose working directory is in it."""
    text = str(path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        if _is_zombie(int(entry.name)):
            continue
        if text in cmdline or cwd == text or cwd.startswith(text + "/"):
            found.append((int(entry.name), cmdline.strip()))
    return found


def processes_running(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and not _is_zombie(int(entry.name)):
            found.append((int(entry.name), cmdline.strip()))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper counts as dead)."""
    return Path(f"/proc/{pid}").exists() and not _is_zombie(pid)


class GristmillProcess:
    """A running `gristmill` command, its stdout and stderr collected line by line."""

    def __init__(self, argv: list[str], env: dict[str, str], data_dir: Path, port: int | None):
        self.argv = argv
        self.env = env
        self.data_dir = data_dir
        self.port = port
        self.url: str | None = None
        self.admin_email: str | None = None
        self.admin_password: str | None = None
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines)),
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            with self._changed:
                sink.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self.stdout_lines)

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.stderr_lines)

    def describe(self) -> str:
        return (
            f"command {self.argv} (exit code {self.proc.poll()})\n--- stdout ---\n"
            f"{self.stdout}\n--- stderr ---\n{self.stderr[-6000:]}"
        )

    def wait_for_stdout(self, predicate: Callable[[str], bool], timeout: float) -> str:
        """The first stdout line matching ``predicate``; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.stdout_lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.stdout_lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no expected line within {timeout} s\n{self.describe()}")
                if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise AssertionError(f"the process exited early\n{self.describe()}")
                self._changed.wait(min(remaining, 0.2))

    def wait_ready(self, timeout: float = 60.0, marker: str = READY) -> None:
        line = self.wait_for_stdout(lambda text: text.startswith(marker), timeout)
        if marker == READY:
            self.url = line[len(READY) :].strip()
        for text in self.stdout_lines:
            if m := re.match(r"^\s*email:\s*(\S+)\s*$", text):
                self.admin_email = m.group(1)
            if m := re.match(r"^\s*password:\s*(\S+)\s*$", text):
                self.admin_password = m.group(1)

    @property
    def local_url(self) -> str:
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process ends by itself, or None if it still runs."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode

    def terminate(
        self, timeout: float = 20.0, sig: signal.Signals = signal.SIGTERM
    ) -> tuple[int, float]:
        """``sig``, then SIGKILL after ``timeout``; the exit code and seconds it took."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        elapsed = time.monotonic() - start
        for reader in self._readers:
            reader.join(5)
        return self.proc.returncode, elapsed


class Launcher:
    """Starts `gristmill` processes and cleans up after all of them."""

    def __init__(self) -> None:
        self.processes: list[GristmillProcess] = []
        self.data_dirs: list[Path] = []

    def data_dir(self) -> Path:
        path = make_data_dir()
        self.data_dirs.append(path)
        return path

    def start(
        self,
        command: str = "up",
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> GristmillProcess:
        data_dir = data_dir or self.data_dir()
        if port is None and command != "worker":
            port = free_port()
        # A stop gives running jobs 5 s, as before the grace was a setting (a test's own
        # GRISTMILL_SHUTDOWN_GRACE_S wins).
        variables = clean_env(
            GRISTMILL_DATA_DIR=str(data_dir), NUM_WORKERS="2", GRISTMILL_SHUTDOWN_GRACE_S="7"
        )
        if port is not None:
            variables["PORT"] = str(port)
        variables.update(env or {})
        process = GristmillProcess(
            [str(GRISTMILL), command, *(args or [])], variables, data_dir, port
        )
        self.processes.append(process)
        if wait:
            process.wait_ready(timeout, marker=WORKER_READY if command == "worker" else READY)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate(timeout=10)
        for path in self.data_dirs:
            # A Postgres left behind by a killed process (its own process group) is ours.
            for pid, _ in processes_using(path):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(path, ignore_errors=True)


class Api:
    """An authenticated client of one platform, with the calls the tests repeat."""

    def __init__(self, url: str, token: str, workspace: str = "main") -> None:
        self.url = url
        self.token = token
        self.workspace = workspace
        self.client = httpx.Client(
            base_url=f"{url}/api", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def close(self) -> None:
        self.client.close()

    @property
    def w(self) -> str:
        return f"/w/{self.workspace}"

    def create_script(self, content: str, path: str | None = None, **extra: Any) -> str:
        path = path or f"u/admin/s_{uuid.uuid4().hex[:10]}"
        body = {"path": path, "content": content, "language": "python3", **extra}
        r = self.client.post(f"{self.w}/scripts/create", json=body)
        assert r.status_code == 201, r.text
        return path

    def run_async(self, path: str, args: dict[str, Any] | None = None) -> str:
        r = self.client.post(f"{self.w}/jobs/run/p/{path}", json=args or {})
        assert r.status_code == 201, r.text
        return r.text

    def update(self, job_id: str, log_offset: int = 0) -> dict[str, Any]:
        r = self.client.get(
            f"{self.w}/jobs_u/getupdate/{job_id}", params={"log_offset": log_offset}
        )
        assert r.status_code == 200, r.text
        return r.json()

    def wait_job(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until the job completes; returns its full record (jobs_u/get)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.update(job_id)["completed"]:
                r = self.client.get(f"{self.w}/jobs_u/get/{job_id}")
                assert r.status_code == 200, r.text
                return r.json()
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not complete within {timeout} s")

    def wait_logs(self, job_id: str, text: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll until the job's logs contain ``text``; returns that update with all logs."""
        deadline = time.monotonic() + timeout
        logs = ""
        offset = 0
        while time.monotonic() < deadline:
            update = self.update(job_id, offset)
            logs += update["new_logs"] or ""
            offset = update["log_offset"]
            if text in logs:
                return {**update, "logs": logs}
            if update["completed"]:
                break
            time.sleep(0.05)
        raise AssertionError(f"job {job_id}: {text!r} not in its logs {logs!r}")


def login(url: str, email: str, password: str) -> str:
    r = httpx.post(f"{url}/api/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return r.text


@pytest.fixture(scope="module")
def launcher() -> Iterator[Launcher]:
    """Processes started by one test module, stopped at its end."""
    launcher = Launcher()
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture
def launch() -> Iterator[Launcher]:
    """Processes started by one test, stopped at its end."""
    launcher = Launcher()
    try:
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(scope="module")
def platform(launcher: Launcher) -> GristmillProcess:
    """`gristmill up` on a fresh data directory: no DATABASE_URL, no SUPERADMIN_SECRET."""
    return launcher.start("up")


@pytest.fixture(scope="module")
def admin_token(platform: GristmillProcess) -> str:
    assert platform.admin_email and platform.admin_password, platform.describe()
    return login(platform.local_url, platform.admin_email, platform.admin_password)


@pytest.fixture(scope="module")
def api(platform: GristmillProcess, admin_token: str) -> Iterator[Api]:
    client = Api(platform.local_url, admin_token)
    try:
        yield client
    finally:
        client.close()
