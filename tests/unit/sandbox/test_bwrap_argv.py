"""The bwrap command line a recipe becomes (no process started: see the hostile suite)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gristmill import Limits, Mount, Recipe
from gristmill.sandbox import SandboxError
from gristmill.sandbox.backends.bwrap import BwrapBackend
from gristmill.sandbox.base import Protected
from gristmill.sandbox.layout import HostEntry, SystemLayout

LAYOUT = SystemLayout(
    (
        HostEntry("bind", "/usr", "/usr"),
        HostEntry("symlink", "usr/bin", "/bin"),
        HostEntry("symlink", "usr/lib", "/lib"),
        HostEntry("bind", "/etc/hosts", "/etc/hosts"),
        HostEntry("bind", "/srv/gm/sandbox/etc/passwd", "/etc/passwd"),
    )
)


def backend(tmp_path: Path, **kwargs: object) -> BwrapBackend:
    return BwrapBackend(
        bwrap="/opt/bwrap",
        prlimit="/usr/bin/prlimit",
        layout=LAYOUT,
        protected=Protected(
            roots=[str(tmp_path / "data"), str(tmp_path / "data" / "jobs")],
            shared=[str(tmp_path / "data" / "cache")],
            jobs_dir=str(tmp_path / "data" / "jobs"),
        ),
        **kwargs,  # type: ignore[arg-type]
    )


def pairs(argv: list[str], flag: str) -> list[tuple[str, str]]:
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def job(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "jobs" / "j1"
    path.mkdir(parents=True)
    return path


def test_a_run_step(tmp_path: Path) -> None:
    cwd = job(tmp_path)
    tool = tmp_path / "toolchain"
    tool.mkdir()
    r = Recipe(
        ["/usr/bin/bash", "main.sh", "a b"],
        {"PATH": "/usr/bin", "WM_JOB_ID": "1"},
        cwd,
        mounts=[Mount(str(tool))],
        limits=Limits(memory_mb=64, processes=50, open_files=100, file_size_mb=2, tmp_mb=8),
    )
    launch = backend(tmp_path).launch(r, network=True, limits=r.limits)
    argv = launch.argv
    assert argv[0] == "/opt/bwrap" and launch.cwd == "/"
    for flag in (
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--share-net",
    ):
        assert flag in argv
    assert argv[argv.index("--uid") + 1] == "65534" and argv[argv.index("--gid") + 1] == "65534"
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--proc") + 1] == "/proc" and argv[argv.index("--dev") + 1] == "/dev"
    assert argv[argv.index("--tmpfs") - 2 : argv.index("--tmpfs") + 2] == [
        "--size",
        str(8 * 1024 * 1024),
        "--tmpfs",
        "/tmp",
    ]
    assert pairs(argv, "--symlink") == [("usr/bin", "/bin"), ("usr/lib", "/lib")]
    ro = pairs(argv, "--ro-bind")
    assert ("/usr", "/usr") in ro and (str(tool), str(tool)) in ro
    assert ("/srv/gm/sandbox/etc/passwd", "/etc/passwd") in ro
    assert pairs(argv, "--bind") == [(str(cwd), str(cwd))]
    assert argv[argv.index("--chdir") + 1] == str(cwd)
    # The root is made read-only last, after every mount point was created.
    end = argv.index("--")
    assert argv[end - 2 : end] == ["--remount-ro", "/"]
    assert argv[end + 1 :] == [
        "/usr/bin/prlimit",
        f"--as={64 * 1024 * 1024}",
        "--nproc=50",
        "--nofile=100",
        f"--fsize={2 * 1024 * 1024}",
        "--",
        "/usr/bin/bash",
        "main.sh",
        "a b",
    ]
    # The environment is the recipe's, passed as is (nothing of the worker's).
    assert launch.env == {"PATH": "/usr/bin", "WM_JOB_ID": "1"}


def test_network_off_and_no_limits(tmp_path: Path) -> None:
    cwd = job(tmp_path)
    none = Limits(memory_mb=None, processes=None, open_files=None, file_size_mb=None, tmp_mb=None)
    r = Recipe(["/usr/bin/true"], {}, cwd, limits=none)
    argv = backend(tmp_path).launch(r, network=False, limits=none).argv
    assert "--share-net" not in argv and "--size" not in argv
    # Without limits, no prlimit: the program directly.
    assert argv[argv.index("--") + 1 :] == ["/usr/bin/true"]


def test_writable_mounts_and_a_lock_step(tmp_path: Path) -> None:
    cwd = job(tmp_path) / "lock"
    cwd.mkdir()
    cache = tmp_path / "data" / "cache" / "uv"
    cache.mkdir(parents=True)
    r = Recipe(
        ["/usr/bin/true"],
        {},
        cwd,
        phase="lock",
        mounts=[Mount(str(cache), writable=True), Mount("/nonexistent/opt", optional=True)],
        network=True,
    )
    argv = backend(tmp_path).launch(r, network=True, limits=r.limits).argv
    assert pairs(argv, "--bind") == [(str(cache), str(cache)), (str(cwd), str(cwd))]
    assert "/nonexistent/opt" not in argv, "an optional mount that does not exist is skipped"


def test_a_prlimit_outside_the_system_directories_is_mounted(tmp_path: Path) -> None:
    b = BwrapBackend(bwrap="/opt/bwrap", prlimit="/opt/util/prlimit", layout=LAYOUT)
    assert ("/opt/util/prlimit", "/opt/util/prlimit") in pairs(b._head, "--ro-bind")


def test_a_root_worker_starts_bwrap_as_another_user(tmp_path: Path) -> None:
    b = backend(tmp_path, run_as=(12345, 12346), setpriv="/usr/bin/setpriv")
    assert b._head[:5] == [
        "/usr/bin/setpriv",
        "--reuid=12345",
        "--regid=12346",
        "--clear-groups",
        "--",
    ]
    assert b._head[5] == "/opt/bwrap"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: [Mount(str(t / "missing"))], "does not exist on this worker"),
        (lambda t: [Mount(str(t / "data"))], "holds"),
        (lambda t: [Mount(str(t))], "mount the directories the step needs"),
        # Inside the platform's directories: another job's, the database's (a mount path
        # may come from a script, as a Go `//replace`).
        (lambda t: [Mount(str(t / "data" / "jobs" / "other"))], "its own job directory"),
        (lambda t: [Mount(str(t / "data" / "postgres"))], "may see only the caches"),
    ],
)
def test_mounts_the_sandbox_refuses(tmp_path: Path, make: object, message: str) -> None:
    cwd = job(tmp_path)
    r = Recipe(["/usr/bin/true"], {}, cwd, mounts=make(tmp_path))  # type: ignore[operator]
    with pytest.raises(SandboxError) as info:
        backend(tmp_path).launch(r, network=True, limits=r.limits)
    assert message in str(info.value)


def test_caches_and_the_jobs_own_directory_may_be_mounted(tmp_path: Path) -> None:
    cwd = job(tmp_path) / "build"
    cwd.mkdir()
    cache = tmp_path / "data" / "cache" / "go"
    cache.mkdir(parents=True)
    r = Recipe(["/usr/bin/true"], {}, cwd, mounts=[Mount(str(cache)), Mount(str(cwd.parent / "x"))])
    (cwd.parent / "x").mkdir()
    argv = backend(tmp_path).launch(r, network=True, limits=r.limits).argv
    assert (str(cache), str(cache)) in pairs(argv, "--ro-bind")
    assert (str(cwd.parent / "x"), str(cwd.parent / "x")) in pairs(argv, "--ro-bind")


def test_a_program_outside_every_mount_is_named(tmp_path: Path) -> None:
    cwd = job(tmp_path)
    hidden = tmp_path / "elsewhere" / "tool"
    hidden.parent.mkdir()
    hidden.write_text("")
    r = Recipe([str(hidden)], {}, cwd)
    with pytest.raises(SandboxError) as info:
        backend(tmp_path).launch(r, network=True, limits=r.limits)
    assert f"{hidden} is not visible inside the sandbox: declare it" in str(info.value)
    link = cwd.parent / "link"
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    (mounted / "tool").symlink_to(hidden)
    r = Recipe([str(mounted / "tool")], {}, cwd, mounts=[Mount(str(mounted))])
    with pytest.raises(SandboxError) as info:
        backend(tmp_path).launch(r, network=True, limits=r.limits)
    assert f"is a link to {hidden}" in str(info.value)
    assert not link.exists()


def test_a_working_directory_holding_other_jobs_is_refused(tmp_path: Path) -> None:
    job(tmp_path)
    r = Recipe(["/usr/bin/true"], {}, tmp_path / "data" / "jobs")
    with pytest.raises(SandboxError) as info:
        backend(tmp_path).launch(r, network=True, limits=r.limits)
    assert "holds other jobs' directories" in str(info.value)


def test_exit_statuses_and_explanations(tmp_path: Path) -> None:
    b = backend(tmp_path)
    assert b.exit_status(0) == 0 and b.exit_status(3) == 3
    assert b.exit_status(137) == -9 and b.exit_status(139) == -11
    assert b.exit_status(255) == 255
    r = Recipe(["mytool"], {}, tmp_path, phase="build")
    tail = "prlimit: failed to execute mytool: No such file or directory\n"
    assert b.explain(r, 1, tail) == (
        "mytool is not visible inside the sandbox: declare it (or its directory) as a mount "
        "of the build step, or check the recipe's PATH"
    )
    assert "is not visible" in (
        b.explain(r, 1, "bwrap: execvp mytool: No such file or directory") or ""
    )
    assert b.explain(r, 1, "some other failure") is None


class _Views:
    """Stands in for ReachableViews (which needs a real mount namespace: see
    tests/integration/test_sandbox_private_toolchain.py): records what is staged."""

    def __init__(self) -> None:
        self.staged: list[str] = []

    def stage(self, source: str) -> str:
        self.staged.append(source)
        return f"/staged/{len(self.staged)}"

    def enter(self) -> list[str]:
        return ["/usr/bin/nsenter", "--mount=/proc/42/ns/mnt", "--"]


def test_a_read_only_mount_the_sandbox_user_cannot_walk_to_is_staged_for_it(
    reachable_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root worker: a toolchain under a 0700 directory is bound from its staged view, in
    the staging namespace (nsenter first), at its own path; reachable mounts are bound by
    their path, and a step that needs no staging starts with setpriv as before."""
    # The rendering alone: handing the job directory to uid 65533 needs root (the real
    # thing runs in tests/integration/test_sandbox_private_toolchain.py).
    monkeypatch.setattr("gristmill.sandbox.backends.bwrap.chown_tree", lambda *args: None)
    base = reachable_tmp_path
    cwd = job(base)
    private = base / "private"
    toolchain = private / "deep" / "toolchain"
    toolchain.mkdir(parents=True)
    private.chmod(0o700)
    shared = base / "shared"
    shared.mkdir()
    views = _Views()
    b = backend(base, run_as=(65533, 65533), setpriv="/usr/bin/setpriv", reach=views)
    r = Recipe(["/usr/bin/true"], {}, cwd, mounts=[Mount(str(toolchain)), Mount(str(shared))])
    argv = b.launch(r, network=True, limits=r.limits).argv
    assert argv[:3] == views.enter()
    assert argv[3 : 3 + len(b._head)] == b._head
    assert views.staged == [str(toolchain)]
    ro = pairs(argv, "--ro-bind")
    assert ("/staged/1", str(toolchain)) in ro and (str(shared), str(shared)) in ro
    # Everything reachable: nothing staged, the command starts with setpriv.
    r = Recipe(["/usr/bin/true"], {}, cwd, mounts=[Mount(str(shared))])
    assert b.launch(r, network=True, limits=r.limits).argv[0] == "/usr/bin/setpriv"
    assert views.staged == [str(toolchain)]
    # Without a way to stage, the mount is refused, naming the blocking directory.
    b = backend(base, run_as=(65533, 65533), setpriv="/usr/bin/setpriv")
    r = Recipe(["/usr/bin/true"], {}, cwd, mounts=[Mount(str(toolchain))])
    with pytest.raises(SandboxError, match=f"{private} \\(mode 0o700\\)"):
        b.launch(r, network=True, limits=r.limits)


def test_a_writable_mount_the_sandbox_user_cannot_walk_to_is_refused(
    reachable_tmp_path: Path,
) -> None:
    base = reachable_tmp_path
    cwd = job(base)
    private = base / "private"
    cache = private / "cache"
    cache.mkdir(parents=True)
    private.chmod(0o700)
    b = backend(base, run_as=(65533, 65533), setpriv="/usr/bin/setpriv")
    r = Recipe(["/usr/bin/true"], {}, cwd, phase="lock", mounts=[Mount(str(cache), writable=True)])
    with pytest.raises(SandboxError) as info:
        b.launch(r, network=True, limits=r.limits)
    assert f"the writable mount {cache} is not reachable by the sandbox's user" in str(info.value)
    assert f"{private} (mode 0o700) does not let other users through" in str(info.value)
