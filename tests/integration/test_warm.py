"""Warm runners under the default sandbox (bwrap), through a real worker on a real database.

Python jobs run in children forked from a warm parent kept for their environment. Each test
here is the hostile-script suite (tests/integration/test_sandbox_hostile.py, cold, Bash) run
again as warm Python jobs, plus what is new with warm processes: a job must not leave state
for the next one, must not reach its parent, and a parent that dies is replaced. Each test
proves the job ran warm (the warm parent's entry module is loaded in it).

The platform runs in this test process: the worker's pid is ``os.getpid()``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from gristmill.config import Settings
from gristmill.server.platform import Platform
from gristmill.warm import WarmPool

from .test_api_jobs import completed, wait_until
from .test_sandbox_hostile import _processes_running
from .test_worker import running

pytestmark = pytest.mark.bundled_plugins

OK = "import sys\ndef main():\n    return ['still serving', '_gristmill_entry' in sys.modules]\n"

#: A job that runs a Bash probe (the cold suite's) from inside its warm child, in each warm
#: runtime: what the probe can reach is what the child's processes can reach. Its output is
#: the job's log as it comes; its result says the job ran warm, and the probe's exit code.
VIA_BASH = {
    "python3": """\
import subprocess, sys
def main(probe: str, args: list = []):
    code = subprocess.run(["bash", "-c", probe, "probe", *args]).returncode
    return {"warm": "_gristmill_entry" in sys.modules, "code": code}
""",
    "bun": """\
export function main(probe: string, args: string[] = []) {
  const done = Bun.spawnSync(["bash", "-c", probe, "probe", ...args], {
    stdout: "inherit",
    stderr: "inherit",
  });
  return { warm: process.argv.includes("--warm"), code: done.exitCode };
}
""",
}

#: The warm runtimes the probes run under: a forking one and a pre-started one.
LANGUAGES = ("python3", "bun")


@pytest.fixture(params=LANGUAGES)
def language(request: pytest.FixtureRequest) -> str:
    if request.param == "bun":
        from gristmill.testing.contract import require_toolchain
        from gristmill_typescript.bun import BunRuntime

        require_toolchain(BunRuntime())
    return str(request.param)


@pytest.fixture(scope="module")
def platform(module_platform: Platform) -> Platform:
    return module_platform


@pytest.fixture(scope="module")
def api(module_api: httpx.AsyncClient) -> httpx.AsyncClient:
    return module_api


def warm_pool(platform: Platform) -> WarmPool:
    assert platform.workers is not None
    pool = platform.workers.policy.warm
    assert pool is not None, "warm mode is on by default"
    return pool


async def start(
    api: httpx.AsyncClient,
    code: str,
    args: dict[str, Any] | None = None,
    language: str = "python3",
    **params: Any,
) -> str:
    r = await api.post(
        "/w/main/jobs/run/preview",
        params=params,
        json={"content": code, "language": language, "args": args or {}},
    )
    assert r.status_code == 201, r.text
    return r.text


async def run(
    api: httpx.AsyncClient,
    code: str,
    args: dict[str, Any] | None = None,
    language: str = "python3",
    **params: Any,
) -> tuple[bool, Any, str]:
    """Run ``code`` and wait: (success, result or error, logs)."""
    job_id = await start(api, code, args, language, **params)
    outcome = await completed(api, job_id)
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
    return outcome["success"], outcome["result"], logs


async def start_probe(
    api: httpx.AsyncClient, language: str, bash: str, *args: str, **params: Any
) -> str:
    return await start(
        api, VIA_BASH[language], {"probe": bash, "args": list(args)}, language, **params
    )


async def probe(
    api: httpx.AsyncClient, language: str, bash: str, *args: str, **params: Any
) -> tuple[Any, str]:
    """Run the Bash probe in a warm ``language`` job: (its result, the job's logs)."""
    ok, result, logs = await run(
        api, VIA_BASH[language], {"probe": bash, "args": list(args)}, language, **params
    )
    assert ok, (result, logs)
    assert result["warm"], "the job ran in a warm child"
    return result, logs


async def still_serving(api: httpx.AsyncClient) -> None:
    ok, result, _ = await run(api, OK)
    assert ok and result == ["still serving", True], result


def message(result: Any) -> str:
    return result["error"]["message"] if isinstance(result, dict) else str(result)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, on the host."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


# -- the hostile suite, warm, in a forking and a pre-started runtime ---------------------------


async def test_a_job_runs_warm_in_its_own_namespaces(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    code = (
        "import os, sys\n"
        "def main(x: int):\n"
        "    print('hi', x)\n"
        "    return {'x': x * 2, 'pid': os.getpid(), 'procs': sorted(p for p in os.listdir('/proc')"
        " if p.isdigit()), 'cwd': os.listdir('.'), 'uid': os.getuid(),"
        " 'warm': '_gristmill_entry' in sys.modules}\n"
    )
    ok, result, logs = await run(api, code, {"x": 21})
    assert ok, result
    assert result["x"] == 42 and "hi 21" in logs
    # PID 2 of a namespace holding only its init and the job: the parent and the keeper
    # are outside it.
    assert result["warm"] and result["pid"] == 2 and result["procs"] == ["1", "2"], result
    # A fresh working directory holding only the script the child wrote.
    assert result["cwd"] == ["main.py"] and result["uid"] == 65534
    assert warm_pool(platform).stats()["parents"] >= 1


async def test_the_workers_environment_is_not_readable(
    api: httpx.AsyncClient, module_settings: Settings, language: str
) -> None:
    os.environ["SUPERADMIN_SECRET_PROBE"] = "leak-me-not"
    try:
        code = (
            'cat "/proc/$1/environ" | tr "\\0" "\\n"\n'
            "cat /proc/1/environ | tr '\\0' '\\n'\n"
            "env\n"
        )
        _, logs = await probe(api, language, code, str(os.getpid()))
    finally:
        del os.environ["SUPERADMIN_SECRET_PROBE"]
    assert f"/proc/{os.getpid()}/environ: No such file or directory" in logs
    assert "leak-me-not" not in logs and module_settings.database_url not in logs
    assert "GRISTMILL_" not in logs and "DATABASE_URL" not in logs
    assert "WM_JOB_ID=" in logs and "WM_TOKEN=" in logs


async def test_the_warm_parent_cannot_be_reached(
    api: httpx.AsyncClient, platform: Platform, language: str
) -> None:
    """New with warm mode: by signal, ptrace or /proc, a job reaches neither its warm parent
    nor its keeper nor the worker (every host PID of them is tried; inside, the job's
    namespace holds only its own processes, see the first test); they serve the next job."""
    await still_serving(api)
    if language == "bun":
        await probe(api, language, "true")  # its environment's parent exists
    parents = list(warm_pool(platform)._parents.values())
    assert parents
    targets = sorted({pid for p in parents for pid in descendants(p.process.pid)})
    # Run by the system's Python from the job's shell: the same for every runtime.
    reach = (
        "import ctypes, json, os, signal, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "mine = {os.getpid(), os.getppid()}\n"
        "reached = []\n"
        "for pid in [int(a) for a in sys.argv[1:]]:\n"
        "    if pid in mine:\n"
        "        continue\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "        reached.append(('kill', pid))\n"
        "    except OSError:\n"
        "        pass\n"
        "    if libc.ptrace(16, pid, None, None) == 0:\n"  # PTRACE_ATTACH
        "        reached.append(('ptrace', pid))\n"
        "    if os.path.exists(f'/proc/{pid}/environ'):\n"
        "        reached.append(('proc', pid))\n"
        "print('reached', json.dumps(reached), flush=True)\n"
    )
    bash = 'python3 -c "$1" "${@:2}"\nkill -9 -1\necho "after kill"\n'
    args = [reach, *map(str, [*targets, os.getpid()])]
    ok, result, logs = await run(api, VIA_BASH[language], {"probe": bash, "args": args}, language)
    assert "reached []" in logs, logs
    # kill -9 -1 ends every process of the job (itself included): the job fails, and that
    # is all it can reach.
    assert not ok and "signal 9" in message(result), result
    for parent in parents:
        assert not parent.dead and parent.process.poll() is None
    assert _processes_running("forkserver.py")
    # The same parents serve the next jobs.
    await still_serving(api)
    assert set(warm_pool(platform)._parents.values()) >= set(parents)


async def test_a_jobs_changes_to_modules_and_globals_are_not_seen_by_the_next(
    api: httpx.AsyncClient,
) -> None:
    """New with warm mode: each job is a fresh fork of a parent that never ran job code.
    (Bun's side: plugins/typescript/tests/test_warm.py.)"""
    vandal = (
        "import builtins, base64, os, sys, asyncio\n"
        "def main():\n"
        "    base64.b64encode = lambda *a, **k: b'hacked'\n"
        "    asyncio.HACKED = True\n"
        "    builtins.HACKED = True\n"
        "    os.environ['HACKED'] = '1'\n"
        "    sys.path.insert(0, '/tmp/evil')\n"
        "    sys.modules['evil'] = object()\n"
        "    open('/tmp/left-behind', 'w').write('x')\n"
        "    open('left-behind', 'w').write('x')\n"
        "    return os.getpid()\n"
    )
    ok, pid, _ = await run(api, vandal)
    assert ok and pid == 2
    check = (
        "import builtins, base64, os, sys, asyncio\n"
        "def main():\n"
        "    return {\n"
        "        'b64': base64.b64encode(b'x').decode(),\n"
        "        'asyncio': hasattr(asyncio, 'HACKED'),\n"
        "        'builtins': hasattr(builtins, 'HACKED'),\n"
        "        'env': 'HACKED' in os.environ,\n"
        "        'path': '/tmp/evil' in sys.path,\n"
        "        'modules': 'evil' in sys.modules,\n"
        "        'tmp': os.path.exists('/tmp/left-behind'),\n"
        "        'cwd': os.path.exists('left-behind'),\n"
        "        'warm': '_gristmill_entry' in sys.modules,\n"
        "    }\n"
    )
    for _ in range(3):  # whichever prepared child each next job gets
        ok, seen, _ = await run(api, check)
        assert ok, seen
        assert seen == {
            "b64": "eA==",
            "asyncio": False,
            "builtins": False,
            "env": False,
            "path": False,
            "modules": False,
            "tmp": False,
            "cwd": False,
            "warm": True,
        }


async def test_another_jobs_files_are_not_readable(
    api: httpx.AsyncClient, module_settings: Settings, language: str
) -> None:
    secret = uuid.uuid4().hex
    keeper = 'echo "$1" > secret.txt\necho "$1" > /tmp/secret.txt\necho "ready $(pwd)"\nsleep 60\n'
    keeper_id = await start_probe(api, language, keeper, secret)

    async def ready() -> str | None:
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{keeper_id}")).text
        return logs if "ready" in logs else None

    logs = await wait_until(ready, timeout=30)
    keeper_cwd = logs.split("ready", 1)[1].split()[0]
    # The same path as the keeper's working directory (children of one parent share it),
    # but another tmpfs: the thief sees its own, empty.
    thief = 'cat "$1/secret.txt" /tmp/secret.txt secret.txt\nls "$2"\nls -a\necho done\n'
    _, logs = await probe(api, language, thief, keeper_cwd, str(module_settings.jobs_dir))
    assert secret not in logs
    assert logs.count("No such file or directory") >= 3, logs
    await api.post(f"/w/main/jobs_u/queue/cancel/{keeper_id}", json={"reason": "done"})
    await completed(api, keeper_id)


async def test_nothing_outside_the_job_directory_is_writable(
    api: httpx.AsyncClient, module_settings: Settings, language: str
) -> None:
    data = str(module_settings.data_dir)
    code = (
        'data="$1"\n'
        'for p in /usr/gm-w /etc/gm-w /bin/gm-w /gm-w /var/gm-w "$data/gm-w" '
        '"$data/jobs/gm-w" /proc/gm-w; do\n'
        '  if ( echo x > "$p" ) 2>/dev/null; then echo "wrote $p"; fi\n'
        '  if mkdir -p "$p.d" 2>/dev/null; then echo "made $p.d"; fi\n'
        "done\n"
        "echo ok > mine.txt && echo 'own dir ok'\n"
        "echo ok > /tmp/mine-w.txt && echo 'tmp ok'\n"
    )
    _, logs = await probe(api, language, code, data)
    assert "wrote" not in logs and "made" not in logs, logs
    assert "own dir ok" in logs and "tmp ok" in logs
    for path in ("/usr/gm-w", "/etc/gm-w", "/gm-w", "/var/gm-w", f"{data}/gm-w"):
        assert not os.path.exists(path)
    assert not (Path(tempfile.gettempdir()) / "mine-w.txt").exists(), "/tmp is private"


async def test_the_database_and_the_data_directory_are_invisible(
    api: httpx.AsyncClient, module_settings: Settings, language: str
) -> None:
    (module_settings.data_dir / "cli-token").write_text("secret-token")
    socket_dir = module_settings.database_url.split("host=")[1].split()[0]
    code = 'ls -la "$1"\ncat "$2/cli-token"\nls "$2"\necho done\n'
    _, logs = await probe(api, language, code, socket_dir, str(module_settings.data_dir))
    assert ".s.PGSQL" not in logs and "secret-token" not in logs
    assert logs.count("No such file or directory") >= 2, logs
    # Of the data directory, only the path to the parent's own directory exists inside.
    assert "cli-token" not in logs.splitlines()


async def test_the_worker_cannot_be_killed(api: httpx.AsyncClient, language: str) -> None:
    code = 'kill -9 "$1"\nkill -9 1\necho "after kill"\n'
    _, logs = await probe(api, language, code, str(os.getpid()))
    assert "No such process" in logs
    # kill -9 1 from inside: the job's init ignores signals from its own namespace.
    assert "after kill" in logs
    await still_serving(api)


async def test_a_fork_bomb_is_contained(api: httpx.AsyncClient, language: str) -> None:
    bomb = "bomb() { bomb | bomb & }\nbomb\nsleep 4\necho survived\n"
    started = time.monotonic()
    bomb_id = await start_probe(api, language, bomb, timeout=20)

    async def bombing() -> bool:
        logs = (await api.get(f"/w/main/jobs_u/get_logs/{bomb_id}")).text
        return "Resource temporarily unavailable" in logs

    await wait_until(bombing, timeout=30)
    # While the bomb holds every process it may have, the other worker's warm job forks.
    await still_serving(api)
    outcome = await completed(api, bomb_id)
    assert time.monotonic() - started < 45
    assert outcome["result"] is not None
    await asyncio.sleep(0.5)
    assert not _processes_running("bomb | bomb")


async def test_a_timeout_kills_the_whole_tree(api: httpx.AsyncClient, language: str) -> None:
    code = "sleep 331 &\n( sleep 331 & wait ) &\nsetsid sleep 331 &\nsleep 331\n"
    started = time.monotonic()
    ok, result, _ = await run(api, VIA_BASH[language], {"probe": code}, language, timeout=2)
    assert not ok and "timed out after 2 s" in message(result), result
    assert time.monotonic() - started < 15
    await asyncio.sleep(0.3)
    assert not _processes_running("sleep 331")
    await still_serving(api)


async def test_cancel_kills_the_whole_tree_and_logs_stream(
    api: httpx.AsyncClient, language: str
) -> None:
    job_id = await start_probe(api, language, "sleep 337 &\necho started\nsleep 337\n")

    async def started() -> bool:
        return "started" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

    # The log line arrives while the job still runs: the log streams.
    await wait_until(started, timeout=30)
    assert _processes_running("sleep 337")
    await api.post(f"/w/main/jobs_u/queue/cancel/{job_id}", json={"reason": "enough"})
    outcome = await completed(api, job_id)
    assert not outcome["success"]
    await asyncio.sleep(0.3)
    assert not _processes_running("sleep 337")
    await still_serving(api)


async def test_errors_and_exit_codes_as_in_cold_mode(api: httpx.AsyncClient) -> None:
    ok, result, _ = await run(api, "def main():\n    raise ValueError('nope')\n")
    assert not ok and result["error"]["name"] == "ValueError"
    assert result["error"]["message"] == "nope" and "main.py" in result["error"]["stack"]
    ok, result, _ = await run(api, "import sys\ndef main():\n    sys.exit(3)\n")
    assert not ok and "exited with status 3" in message(result)
    ok, result, _ = await run(api, "import os\ndef main():\n    os._exit(5)\n")
    assert not ok and "exited with code 5" in message(result), result
    ok, result, _ = await run(api, "import os\ndef main():\n    os.kill(os.getpid(), 9)\n")
    assert not ok and "signal 9" in message(result), result
    ok, result, _ = await run(api, "import time\ndef main():\n    return time.time()\n")
    assert ok and abs(result - time.time()) < 60
    # A non-daemon thread still running when main returns is waited for, as at an
    # interpreter's exit.
    code = (
        "import threading, time\n"
        "def main():\n"
        "    threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "    return 'returned'\n"
    )
    ok, result, logs = await run(api, code)
    assert ok and result == "returned" and "thread done" in logs, logs


async def test_a_dying_parent_is_replaced_and_its_job_runs_again(
    api: httpx.AsyncClient, platform: Platform
) -> None:
    code = (
        "import os, time\n"
        "def main(tag: str):\n"
        "    print('running', os.getpid(), flush=True)\n"
        "    time.sleep(1.5)\n"
        "    return tag\n"
    )
    await still_serving(api)
    before = set(warm_pool(platform)._parents.values())
    job_id = await start(api, code, {"tag": "again"})

    async def running_now() -> bool:
        return "running" in (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text

    await wait_until(running_now, timeout=30)
    for parent in before:
        os.killpg(parent.process.pid, signal.SIGKILL)
    outcome = await completed(api, job_id)
    logs = (await api.get(f"/w/main/jobs_u/get_logs/{job_id}")).text
    assert outcome["success"] and outcome["result"] == "again", (outcome, logs)
    assert "died under it; the job runs once more, cold" in logs
    # A new parent serves the next job.
    await still_serving(api)
    after = set(warm_pool(platform)._parents.values())
    assert after and not (after & before)


# -- settings of their own --------------------------------------------------------------------


HUGE_RESULT = {
    "python3": "def main():\n    return 'a' * 3_000_000\n",
    "bun": "export function main() {\n  return 'a'.repeat(3_000_000);\n}\n",
}


async def test_memory_network_log_and_result_limits(settings: Settings) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    limited = settings.with_overrides(
        job_max_memory_mb=256, job_network=False, max_log_size_mb=1, max_result_size_mb=1
    )
    connect = (
        'if exec 3<>"/dev/tcp/127.0.0.1/$1"; then echo connected; else echo refused; fi\n'
        # Loopback works inside (bwrap's cold sandboxes have it up too).
        'python3 -c \'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); '
        's.listen(1); socket.create_connection(s.getsockname()).close(); print("loopback")\'\n'
    )
    flood = "head -c 30000000 /dev/zero | tr '\\0' x | fold -w 100\necho\necho the-end\n"
    try:
        async with running(limited) as (platform, api):
            assert warm_pool(platform) is not None
            for language in LANGUAGES:
                _, logs = await probe(api, language, connect, str(port))
                assert "refused" in logs and "connected" not in logs, logs
                assert "loopback" in logs, logs
                _, logs = await probe(api, language, flood)
                assert "[gristmill] log truncated: this job printed more than 1 MB" in logs
                assert "the-end" not in logs
                ok, result, _ = await run(api, HUGE_RESULT[language], language=language)
                assert not ok and result["error"]["name"] == "ResultTooLarge", result
                assert "over the limit of 1 MB" in message(result)
            # Bun's cold recipe has no memory limit; Python's is capped by the worker's.
            ok, result, _ = await run(
                api, "def main():\n    s = 'a' * 600_000_000\n    return len(s)\n"
            )
            assert not ok and result["error"]["name"] == "MemoryError", result
            await still_serving(api)
    finally:
        listener.close()


async def test_off_per_worker_group(settings: Settings) -> None:
    async with running(settings.with_overrides(warm=False)) as (platform, api):
        assert platform.workers is not None and platform.workers.policy.warm is None
        ok, result, _ = await run(api, OK)
        assert ok and result == ["still serving", False]
