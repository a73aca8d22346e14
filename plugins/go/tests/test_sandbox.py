"""Go jobs under bubblewrap, as a worker runs them: every step sees what it declares.

Locked, installed, built and run in the sandbox: a script whose module is a directory of the
worker (``//replace``, mounted read-only into the lock, install and build steps) and one whose
modules come from a proxy of files. And what the sandbox is for: a job cannot replace its
compiled program, which lives in the cache every later job of the script runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from pathlib import Path

import pytest
from gristmill.runtimes import Mount, ScriptError
from gristmill.sandbox import RunPolicy
from gristmill.sandbox.spec import SYSTEM_DIRS, is_under
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, make_context, run_job
from gristmill_go.runtime import LOCAL_MODULES_ENV, GoRuntime
from gristmill_go.toolchain import goroot as goroot_of

from .test_locking import GREET_SCRIPT, SHOUT_SCRIPT, _publish

# Tries every way to put another program where its own is: the cache's file is read-only
# and alone in its directory, so each fails and the job reports all of them.
OVERWRITE_SCRIPT = """package inner

import (
	"errors"
	"os"
	"path/filepath"
)

func main() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	evil := []byte("#!/bin/sh\\necho pwned\\n")
	var failures []error
	if err := os.Chmod(exe, 0o777); err != nil {
		failures = append(failures, err)
	}
	if err := os.WriteFile(exe, evil, 0o755); err != nil {
		failures = append(failures, err)
	}
	tmp := filepath.Join(filepath.Dir(exe), ".evil")
	if err := os.WriteFile(tmp, evil, 0o755); err != nil {
		failures = append(failures, err)
	} else if err := os.Rename(tmp, exe); err != nil {
		failures = append(failures, err)
	}
	if err := os.Remove(exe); err != nil {
		failures = append(failures, err)
	} else if err := os.WriteFile(exe, evil, 0o755); err != nil {
		failures = append(failures, err)
	}
	if len(failures) == 4 {
		return "", errors.Join(failures...)
	}
	return "replaced " + exe, nil
}
"""


@pytest.fixture
def runtime(go_build_cache: Path) -> GoRuntime:
    runtime = GoRuntime(build_cache=go_build_cache)
    require_toolchain(runtime)
    return runtime


def _ok(ran: RanJob) -> RanJob:
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    return ran


def _programs(cache: Path) -> list[Path]:
    return sorted((cache / "bin").iterdir())


def test_a_local_module_is_locked_installed_built_and_run_in_the_sandbox(
    runtime: GoRuntime,
    sandbox_policy: RunPolicy,
    sandbox_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    runtime = GoRuntime(build_cache=runtime.build_cache)  # reads GOPROXY
    greet = sandbox_root / "modules" / "greet"
    greet.mkdir(parents=True)
    (greet / "go.mod").write_text("module example.com/greet\n\ngo 1.21\n")
    (greet / "greet.go").write_text(
        'package greet\n\nfunc Hello(name string) string { return "hello " + name }\n'
    )
    code = GREET_SCRIPT.format(greet=greet)
    cache = sandbox_root / "cache" / "go"

    first = _ok(run_job(runtime, code, {"name": "Ada"}, sandbox_root, policy=sandbox_policy))
    assert first.result == "hello Ada"
    (env,) = [p for p in (sandbox_root / "cache" / "envs" / "go").iterdir() if p.is_dir()]
    assert f"replace example.com/greet => {greet}" in (env / "go.mod").read_text()

    # The lock and install steps see the module's directory, read-only (and the build: see
    # test_what_each_step_declares).
    ctx = make_context(runtime, code, {}, sandbox_root, cache_dir=cache)
    lock_steps = runtime.prepare_lock(ctx, runtime.lock_inputs(code) or "")
    assert all(Mount(str(greet)) in step.mounts for step in lock_steps)
    ctx = dataclasses.replace(ctx, lock=(env / "go.mod").read_text() + "//go.sum\n")
    (install,) = runtime.prepare_install(ctx, ctx.lock or "", sandbox_root / "target")
    assert Mount(str(greet)) in install.mounts

    # The next job runs the cached program: one step, which sees it read-only.
    ran = _ok(run_job(runtime, code, {"name": "Bob"}, sandbox_root, policy=sandbox_policy))
    assert ran.result == "hello Bob"
    (program,) = _programs(cache)
    assert not (ran.job_dir / "build").exists()

    # An edit of the module is a new program, built in the sandbox from the mounted directory.
    (greet / "greet.go").write_text(
        'package greet\n\nfunc Hello(name string) string { return "hi " + name }\n'
    )
    ran = _ok(run_job(runtime, code, {"name": "Cy"}, sandbox_root, policy=sandbox_policy))
    assert ran.result == "hi Cy"
    assert len(_programs(cache)) == 2 and program in _programs(cache)


def test_modules_from_a_file_proxy_are_locked_installed_and_built_in_the_sandbox(
    go_build_cache: Path,
    sandbox_policy: RunPolicy,
    sandbox_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = sandbox_root / "proxy"
    _publish(
        proxy,
        "example.com/caps",
        "v1.1.0",
        {
            "caps.go": 'package caps\n\nimport "strings"\n\nfunc Up(s string) string { return strings.ToUpper(s) }\n'
        },
    )
    _publish(
        proxy,
        "example.com/shout",
        "v1.0.0",
        {
            "shout.go": 'package shout\n\nimport "example.com/caps"\n\nfunc Shout(s string) string { return caps.Up(s) + "!" }\n'
        },
        requires="require example.com/caps v1.1.0\n",
    )
    # The worker's proxy is a directory: mounted read-only into the lock and install steps.
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")
    runtime = GoRuntime(build_cache=go_build_cache)
    require_toolchain(runtime)
    ran = _ok(run_job(runtime, SHOUT_SCRIPT, {"name": "Ada"}, sandbox_root, policy=sandbox_policy))
    assert ran.result == "ADA!"
    # The lock filled the shared module cache; the install copied from it into its own.
    shared = sandbox_root / "cache" / "go" / "gopath" / "pkg" / "mod"
    assert (shared / "cache" / "download" / "example.com" / "shout" / "@v").is_dir()
    (env,) = [p for p in (sandbox_root / "cache" / "envs" / "go").iterdir() if p.is_dir()]
    assert (env / "mod" / "example.com" / "caps@v1.1.0" / "caps.go").is_file()


def test_a_job_cannot_replace_its_program_in_the_shared_cache(
    runtime: GoRuntime, sandbox_policy: RunPolicy, sandbox_root: Path, tmp_path: Path
) -> None:
    cache = sandbox_root / "cache" / "go"
    ran = run_job(runtime, OVERWRITE_SCRIPT, {}, sandbox_root, policy=sandbox_policy)
    assert not ran.outcome.success, ran.outcome.result_json
    message = ran.result["error"]["message"]
    assert "read-only file system" in message, message
    (program,) = _programs(cache)
    built = program.read_bytes()
    assert built.startswith(b"\x7fELF")

    # Every later job of the script runs the same program, and it fails the same way.
    again = run_job(runtime, OVERWRITE_SCRIPT, {}, sandbox_root, policy=sandbox_policy)
    assert again.result["error"]["message"] == message.replace(str(ran.job_dir), str(again.job_dir))
    assert hashlib.sha256(program.read_bytes()).digest() == hashlib.sha256(built).digest()

    # The control: without the sandbox, the same job does replace its program.
    bare = tmp_path / "cache"
    replaced = _ok(run_job(runtime, OVERWRITE_SCRIPT, {}, tmp_path, cache_dir=bare))
    (program,) = _programs(bare)
    assert replaced.result == f"replaced {program}"
    assert b"pwned" in program.read_bytes()


def test_local_modules_can_be_confined_to_directories_of_the_worker(
    go_build_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "modules"
    monkeypatch.setenv(LOCAL_MODULES_ENV, str(allowed))
    runtime = GoRuntime(build_cache=go_build_cache)
    require_toolchain(runtime)
    inside = GREET_SCRIPT.format(greet=allowed / "greet")
    ctx = make_context(runtime, inside, {}, tmp_path)
    (tidy, _) = runtime.prepare_lock(ctx, runtime.lock_inputs(inside) or "")
    assert Mount(str(allowed / "greet"), optional=False) in tidy.mounts

    outside = GREET_SCRIPT.format(greet=tmp_path / "elsewhere")
    ctx = make_context(runtime, outside, {}, tmp_path)
    with pytest.raises(ScriptError, match=LOCAL_MODULES_ENV):
        runtime.prepare_lock(ctx, runtime.lock_inputs(outside) or "")
    lock = f"module script\n\ngo 1.21\n\nreplace example.com/greet => {tmp_path / 'elsewhere'}\n"
    with pytest.raises(ScriptError, match="only under"):
        runtime.prepare(dataclasses.replace(ctx, lock=lock))

    # A link inside that leads outside is outside (the sandbox would mount its target).
    (tmp_path / "elsewhere").mkdir()
    allowed.mkdir()
    (allowed / "link").symlink_to(tmp_path / "elsewhere")
    linked = GREET_SCRIPT.format(greet=allowed / "link")
    with pytest.raises(ScriptError, match="only under"):
        runtime.prepare_lock(ctx, runtime.lock_inputs(linked) or "")


def test_what_each_step_declares(runtime: GoRuntime, tmp_path: Path) -> None:
    """The caches are writable only in the steps that fill them (which run no code of the
    script); the run step sees its own program, read-only, and nothing else of them."""
    greet = tmp_path / "modules" / "greet"
    greet.mkdir(parents=True)
    code = GREET_SCRIPT.format(greet=greet)
    cache = tmp_path / "cache"
    ctx = make_context(runtime, code, {}, tmp_path, cache_dir=cache)
    gocache = str(runtime.build_cache)
    gopath = str(cache / "gopath")
    assert runtime.go.path is not None
    goroot = goroot_of(runtime.go.path)
    assert goroot is not None and Path(goroot, "pkg", "tool").is_dir()

    # Lock: the shared module cache (under GOPATH) and Go's build cache, the network.
    for step in runtime.prepare_lock(ctx, runtime.lock_inputs(code) or ""):
        writable = {m.source for m in step.mounts if m.writable}
        assert writable == {gopath, gocache}
        assert Mount(goroot) in step.mounts and Mount(str(greet)) in step.mounts
        assert step.network is True and step.limits.memory_mb is None

    # Install: only its target (the step's directory); the lock's downloads read-only.
    lock = f"module script\n\ngo 1.21\n\nreplace example.com/greet => {greet}\n//go.sum\n"
    target = tmp_path / "target"
    (install,) = runtime.prepare_install(ctx, lock, target)
    assert install.cwd == target and not [m for m in install.mounts if m.writable]
    download = str(cache / "gopath" / "pkg" / "mod" / "cache" / "download")
    assert Mount(download, optional=True) in install.mounts
    assert install.network is True

    # Build: the program cache and Go's build cache, the installed modules read-only, no
    # network, and never cgo, whatever the job's environment says.
    deps = tmp_path / "deps"
    deps.mkdir()
    ctx = dataclasses.replace(ctx, lock=lock, deps_dir=deps, env={**ctx.env, "CGO_ENABLED": "1"})
    build, run = runtime.prepare(ctx)
    assert {m.source for m in build.mounts if m.writable} == {str(cache / "bin"), gocache}
    assert Mount(str(deps)) in build.mounts and Mount(str(greet)) in build.mounts
    # The toolchain: Go, and the Python that runs the build helper, with its directory.
    for directory in (goroot, sys.base_prefix, os.path.dirname(build.argv[3])):
        # Declared read-only, or in a system directory every step sees (a system Python).
        assert any(is_under(directory, system) for system in SYSTEM_DIRS) or any(
            os.path.join(directory, "").startswith(os.path.join(m.source, ""))
            for m in build.mounts
            if not m.writable
        ), directory
    assert build.env["CGO_ENABLED"] == "0"
    assert build.network is False
    assert build.limits.memory_mb is None and build.limits.processes is None

    # Run: the program alone, read-only; a process limit; no memory limit (Go reserves
    # address space it never uses).
    (program,) = run.argv
    assert program == build.argv[-1] and program.startswith(str(cache / "bin") + "/")
    assert list(run.mounts) == [Mount(program)]
    assert run.network is None
    assert run.limits.memory_mb is None and run.limits.processes == 1024
