"""Hostile jobs under each sandbox backend (bwrap, nsjail), run through a real worker on a real database.

Each test is a Bash script doing what a job must not be able to do (read the worker's
environment, see or signal other processes, read another job's files, write outside its
directory, reach the database, exhaust memory or processes, use the network when it is off,
flood the log, return a huge result). Each asserts that the action failed inside the job
and that the same worker then runs an ordinary job.

The platform runs in this test process: the worker's pid is ``os.getpid()``, and a job that
managed to kill it would end the test run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from gristmill.config import Settings
from gristmill.sandbox import RunPolicy
from gristmill.testing.pytest_plugin import PgCluster

from .test_api_jobs import completed, wait_until
from .test_worker import running

pytestmark = pytest.mark.bundled_plugins

OK = 'echo "still serving"\n'


@pytest.fixture
def sandboxed(settings: Settings, sandbox_backend: str, sandbox_policy: RunPolicy) -> Settings:
    """The suite's settings (a data directory the sandbox's user can reach, outside /tmp)
    with a sandbox backend chosen explicitly: every attack runs under bwrap and under
    nsjail. Skipped where the backend cannot run, except in CI, where the hostile suite must
    run under both: ``sandbox_policy`` checks that once per backend for the session (a check
    per test started a sandbox and copied /etc again, a second a test)."""
    return settings.with_overrides(sandbox=sandbox_backend, log_flush_ms=50)


async def run(
    api: httpx.AsyncClient, code: str, args: dict[str, Any] | None = None, **params: Any
) -> tuple[bool, Any, str]:
    """Run ``code`` as a Bash job and wait: (success, result or error, logs)."""
    r = await api.post(
        "/w/main/jobs/run/preview",
        params=params,
        json={"content": code, "language": "bash", "args": args or {}},
    )
    assert r.status_code == 201, r.text
    job_id = r.text
    outcome = await completed(api, job_id)
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
    return outcome["success"], outcome["result"], logs


async def still_serving(api: httpx.AsyncClient) -> None:
    ok, result, _ = await run(api, OK)
    assert ok and result == "still serving"


def message(result: Any) -> str:
    return result["error"]["message"] if isinstance(result, dict) else str(result)


async def test_the_workers_environment_is_not_readable(sandboxed: Settings) -> None:
    os.environ["SUPERADMIN_SECRET"] = "leak-me-not"
    os.environ["DATABASE_URL"] = sandboxed.database_url
    try:
        async with running(sandboxed) as (_, api):
            code = (
                'pid="$1"\n'
                'cat "/proc/$pid/environ" | tr "\\0" "\\n"\n'
                "cat /proc/1/environ | tr '\\0' '\\n'\n"
                "env\n"
                "exit 0\n"
            )
            ok, _, logs = await run(api, code, {"pid": str(os.getpid())})
            assert ok
            assert f"/proc/{os.getpid()}/environ: No such file or directory" in logs
            assert "leak-me-not" not in logs
            assert "DATABASE_URL" not in logs and "SUPERADMIN_SECRET" not in logs
            assert "GRISTMILL_" not in logs
            # The job's own variables are there.
            assert "WM_JOB_ID=" in logs and "WM_TOKEN=" in logs
            await still_serving(api)
    finally:
        del os.environ["SUPERADMIN_SECRET"], os.environ["DATABASE_URL"]


async def test_only_the_jobs_own_processes_are_visible(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        code = (
            'pid="$1"\n'
            "for p in /proc/[0-9]*; do echo \"pid ${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; done\n"
            'kill -0 "$pid" && echo "worker signalled"\n'
            "echo done\n"
        )
        ok, _, logs = await run(api, code, {"pid": str(os.getpid())})
        assert ok, logs
        pids = [line.split()[1] for line in logs.splitlines() if line.startswith("pid ")]
        # pid 1 (bwrap's init; under nsjail the script itself), the script, and the
        # subshells of this loop: nothing else.
        assert "1" in pids and str(os.getpid()) not in pids
        assert len(pids) <= 5, logs
        assert "postgres" not in logs and "pytest" not in logs
        assert "worker signalled" not in logs and "No such process" in logs
        await still_serving(api)


async def test_another_jobs_directory_is_not_readable(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        secret = uuid.uuid4().hex
        keeper = 'secret="$1"\necho "$secret" > secret.txt\necho ready\nsleep 60\n'
        r = await api.post(
            "/w/main/jobs/run/preview",
            json={"content": keeper, "language": "bash", "args": {"secret": secret}},
        )
        keeper_id = r.text
        keeper_dir = sandboxed.jobs_dir / keeper_id

        async def ready() -> bool:
            return "ready" in (await api.get(f"/w/main/jobs_u/get_logs/{keeper_id}")).text

        await wait_until(ready, timeout=30)
        assert (keeper_dir / "secret.txt").read_text().strip() == secret
        thief = (
            'dir="$1"\n'
            'jobs="$2"\n'
            'cat "$dir/secret.txt"\n'
            'ls "$jobs"\n'
            'ls "$dir/.."\n'
            "ls ..\n"
            "echo done\n"
        )
        ok, _, logs = await run(
            api, thief, {"dir": str(keeper_dir), "jobs": str(sandboxed.jobs_dir)}
        )
        assert ok, logs
        assert secret not in logs
        assert f"{keeper_dir}/secret.txt: No such file or directory" in logs
        # The jobs directory, inside, holds only the job's own directory.
        listed = [line for line in logs.splitlines() if "/" not in line and line != "done"]
        assert keeper_id not in listed and len(set(listed)) == 1, logs
        await api.post(f"/w/main/jobs_u/queue/cancel/{keeper_id}", json={"reason": "done"})
        await completed(api, keeper_id)
        await still_serving(api)


async def test_nothing_outside_the_job_directory_is_writable(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        data = str(sandboxed.data_dir)
        code = (
            'data="$1"\n'
            'for p in /usr/gm-x /etc/gm-x /bin/gm-x /gm-x /var/gm-x "$data/gm-x" '
            '"$data/jobs/gm-x" /proc/gm-x; do\n'
            '  if ( echo x > "$p" ) 2>/dev/null; then echo "wrote $p"; fi\n'
            '  if mkdir -p "$p.d" 2>/dev/null; then echo "made $p.d"; fi\n'
            "done\n"
            "echo ok > mine.txt && echo 'own dir ok'\n"
            "echo ok > /tmp/mine.txt && echo 'tmp ok'\n"
        )
        ok, _, logs = await run(api, code, {"data": data})
        assert ok, logs
        assert "wrote" not in logs and "made" not in logs, logs
        assert "own dir ok" in logs and "tmp ok" in logs
        for path in ("/usr/gm-x", "/etc/gm-x", "/gm-x", "/var/gm-x", f"{data}/gm-x"):
            assert not os.path.exists(path)
        # /tmp (and /dev, a tmpfs of bwrap's) are the job's own, gone with it.
        assert not (Path(tempfile.gettempdir()) / "mine.txt").exists(), "/tmp is private"
        await still_serving(api)


async def test_the_database_and_the_data_directory_are_invisible(
    sandboxed: Settings, pg_cluster: PgCluster
) -> None:
    socket_dir = pg_cluster.server.socket_dir
    assert any(p.name.startswith(".s.PGSQL") for p in socket_dir.iterdir())
    (sandboxed.data_dir / "cli-token").write_text("secret-token")
    async with running(sandboxed) as (_, api):
        code = (
            'sockets="$1"\n'
            'data="$2"\n'
            'pgdata="$3"\n'
            'ls -la "$sockets"\n'
            'cat "$data/cli-token"\n'
            'ls "$pgdata"\n'
            'cat "$pgdata/PG_VERSION"\n'
            "echo done\n"
        )
        ok, _, logs = await run(
            api,
            code,
            {
                "sockets": str(socket_dir),
                "data": str(sandboxed.data_dir),
                "pgdata": str(pg_cluster.server.pgdata),
            },
        )
        assert ok, logs
        assert ".s.PGSQL" not in logs and "secret-token" not in logs
        assert logs.count("No such file or directory") >= 4, logs
        await still_serving(api)


async def test_the_worker_cannot_be_killed(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        code = 'pid="$1"\nkill -9 "$pid"\nkill -9 -1\nkill -9 1\necho "after kill"\n'
        ok, result, logs = await run(api, code, {"pid": str(os.getpid())})
        assert "No such process" in logs
        # kill -9 -1 ends every process of the job (itself included): the job fails, and
        # that is all it can reach.
        assert not ok or result == "after kill"
        await still_serving(api)


async def test_exhausting_memory_fails_with_a_memory_error(sandboxed: Settings) -> None:
    async with running(sandboxed.with_overrides(job_max_memory_mb=64)) as (_, api):
        code = 's=$(head -c 300000000 /dev/zero | tr "\\0" a)\necho "allocated ${#s}"\n'
        started = time.monotonic()
        ok, result, logs = await run(api, code)
        assert not ok
        assert "allocated" not in logs
        assert "memory limit of 64 MB" in message(result) or "limited to 64 MB" in message(
            result
        ), result
        assert "memory" in message(result)
        assert time.monotonic() - started < 60
        await still_serving(api)


async def test_a_fork_bomb_is_contained(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        bomb = "bomb() { bomb | bomb & }\nbomb\nsleep 4\necho survived\n"
        started = time.monotonic()
        r = await api.post(
            "/w/main/jobs/run/preview",
            params={"timeout": 20},
            json={"content": bomb, "language": "bash"},
        )
        bomb_id = r.text

        async def bombing() -> bool:
            logs = (await api.get(f"/w/main/jobs_u/get_logs/{bomb_id}")).text
            return "Resource temporarily unavailable" in logs

        await wait_until(bombing, timeout=30)
        # While the bomb holds all the processes it may have, the other worker runs a job:
        # the process limit is per job, not per user.
        await still_serving(api)
        outcome = await completed(api, bomb_id)
        assert time.monotonic() - started < 45
        assert not outcome["success"] or outcome["result"] == "survived"
        await still_serving(api)
    # Nothing of the bomb is left on the machine.
    await asyncio.sleep(0.5)
    assert not _processes_running("main.sh", job_id=bomb_id)


async def test_no_network_when_the_worker_group_has_none(sandboxed: Settings) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    code = (
        'port="$1"\n'
        'if exec 3<>"/dev/tcp/127.0.0.1/$port"; then echo connected; else echo refused; fi\n'
    )
    try:
        # The control: with the network (the default), the job reaches the listener.
        async with running(sandboxed) as (_, api):
            ok, result, _ = await run(api, code, {"port": str(port)})
            assert ok and result == "connected", result
        async with running(sandboxed.with_overrides(job_network=False)) as (_, api):
            ok, result, logs = await run(api, code, {"port": str(port)})
            assert ok and "connected" not in logs and result == "refused", logs
            await still_serving(api)
    finally:
        listener.close()


async def test_a_huge_log_is_truncated_and_the_worker_stays_healthy(
    sandboxed: Settings,
) -> None:
    async with running(sandboxed.with_overrides(max_log_size_mb=1)) as (_, api):
        code = "head -c 30000000 /dev/zero | tr '\\0' x | fold -w 100\necho\necho the-end\n"
        ok, result, logs = await run(api, code)
        assert ok and result == "the-end", (result, logs[-300:])
        assert "[gristmill] log truncated: this job printed more than 1 MB" in logs
        assert 1024 * 1024 <= len(logs) < 1024 * 1024 + 1000
        assert "the-end" not in logs
        await still_serving(api)


async def test_a_huge_result_is_refused(sandboxed: Settings) -> None:
    async with running(sandboxed.with_overrides(max_result_size_mb=1)) as (_, api):
        code = (
            "{ printf '\"'; head -c 3000000 /dev/zero | tr '\\0' a; printf '\"'; } > result.json\n"
        )
        ok, result, _ = await run(api, code)
        assert not ok
        assert result["error"]["name"] == "ResultTooLarge"
        assert "2.9 MB, over the limit of 1 MB" in message(result)
        await still_serving(api)


async def test_a_timeout_kills_the_whole_tree(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        code = "sleep 313 &\n( sleep 313 & wait ) &\nsetsid sleep 313 &\nsleep 313\n"
        started = time.monotonic()
        ok, result, _ = await run(api, code, timeout=2)
        assert not ok and "timed out after 2 s" in message(result)
        assert time.monotonic() - started < 15
        await asyncio.sleep(0.3)
        assert not _processes_running("sleep 313")
        await still_serving(api)


async def test_cancel_kills_the_whole_tree(sandboxed: Settings) -> None:
    async with running(sandboxed) as (_, api):
        code = "sleep 317 &\necho started\nsleep 317\n"
        r = await api.post("/w/main/jobs/run/preview", json={"content": code, "language": "bash"})
        job_id = r.text

        async def started() -> bool:
            return "started" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

        await wait_until(started, timeout=30)
        assert _processes_running("sleep 317")
        await api.post(f"/w/main/jobs_u/queue/cancel/{job_id}", json={"reason": "enough"})
        outcome = await completed(api, job_id)
        assert not outcome["success"]
        await asyncio.sleep(0.3)
        assert not _processes_running("sleep 317")
        await still_serving(api)


def _processes_running(text: str, job_id: str | None = None) -> list[int]:
    """Live processes whose command line contains ``text``; with ``job_id``, only those of
    that job (``WM_JOB_ID`` in their environment): the tests run on two pytest-xdist
    workers, and the other's jobs run the same commands (``bash main.sh``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            if job_id is not None and text in cmdline:
                environ = (entry / "environ").read_bytes().split(b"\0")
                if f"WM_JOB_ID={job_id}".encode() not in environ:
                    continue
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
