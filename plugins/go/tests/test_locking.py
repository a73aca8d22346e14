"""Locking, installing and running scripts that import modules, with the real toolchain.

The Go module proxy is out of reach of this machine: modules come from a directory on disk
(``//replace``) or from a proxy made of files (``GOPROXY=file://...``, Go's proxy protocol).
The core's part (lock when the script asks for modules, install once per lock, then run) is
done here by hand, as :func:`gristmill.worker.execution.execute` does it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import JobContext, Recipe
from gristmill.testing.contract import require_toolchain
from gristmill.testing.runner import RanJob, make_context, run_job
from gristmill.worker.execution import execute
from gristmill_go.runtime import GoRuntime

GREET_SCRIPT = """package inner

import (
	"strings"

	"example.com/greet"
)

//require example.com/greet v0.0.0
//replace example.com/greet => {greet}

func main(name string) (interface{{}}, error) {{
	return strings.TrimSpace(greet.Hello(name)), nil
}}
"""

SHOUT_SCRIPT = """package inner

import "example.com/shout"

func main(name string) string {
	return shout.Shout(name)
}
"""


@pytest.fixture
def greet(tmp_path: Path) -> Path:
    """A module on disk: example.com/greet."""
    module = tmp_path / "modules" / "greet"
    module.mkdir(parents=True)
    (module / "go.mod").write_text("module example.com/greet\n\ngo 1.21\n")
    (module / "greet.go").write_text(
        'package greet\n\nfunc Hello(name string) string { return "hello " + name }\n'
    )
    return module


@pytest.fixture
def proxy(tmp_path: Path) -> Path:
    """A module proxy of files: example.com/shout v1.0.0, which requires example.com/caps."""
    root = tmp_path / "proxy"
    _publish(
        root,
        "example.com/caps",
        "v1.1.0",
        {
            "caps.go": 'package caps\n\nimport "strings"\n\nfunc Up(s string) string { return strings.ToUpper(s) }\n'
        },
    )
    _publish(
        root,
        "example.com/shout",
        "v1.0.0",
        {
            "shout.go": 'package shout\n\nimport "example.com/caps"\n\nfunc Shout(s string) string { return caps.Up(s) + "!" }\n'
        },
        requires="require example.com/caps v1.1.0\n",
    )
    return root


def _publish(
    root: Path, module: str, version: str, files: dict[str, str], requires: str = ""
) -> None:
    """``module@version`` as a GOPROXY serves it: list, .info, .mod and .zip."""
    versions = root / module / "@v"
    versions.mkdir(parents=True)
    go_mod = f"module {module}\n\ngo 1.21\n" + (f"\n{requires}" if requires else "")
    (versions / "list").write_text(version + "\n")
    (versions / f"{version}.info").write_text(
        json.dumps({"Version": version, "Time": "2024-01-01T00:00:00Z"})
    )
    (versions / f"{version}.mod").write_text(go_mod)
    with zipfile.ZipFile(versions / f"{version}.zip", "w") as archive:
        archive.writestr(f"{module}@{version}/go.mod", go_mod)
        for name, content in files.items():
            archive.writestr(f"{module}@{version}/{name}", content)


def _runtime(go_build_cache: Path) -> GoRuntime:
    runtime = GoRuntime(build_cache=go_build_cache)
    require_toolchain(runtime)
    return runtime


def _run_steps(recipes: Recipe | Sequence[Recipe]) -> subprocess.CompletedProcess[str]:
    """Run recipes as the core does (their own environment and directory); stop at the first
    failure."""
    done = subprocess.CompletedProcess[str]([], 0, "")
    for recipe in [recipes] if isinstance(recipes, Recipe) else recipes:
        done = subprocess.run(
            list(recipe.argv),
            env=dict(recipe.env),
            cwd=recipe.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            break
    return done


def _lock(runtime: GoRuntime, code: str, root: Path, cache: Path) -> str:
    inputs = runtime.lock_inputs(code)
    assert inputs is not None
    ctx = make_context(runtime, code, {}, root, cache_dir=cache)
    lock_ctx = dataclasses.replace(ctx, job_dir=ctx.job_dir / "lock")
    lock_ctx.job_dir.mkdir()
    recipes = runtime.prepare_lock(lock_ctx, inputs)
    assert {(r.phase, r.failure_name) for r in recipes} == {("lock", "LockError")}
    done = _run_steps(recipes)
    assert done.returncode == 0, done.stdout
    return runtime.read_lock(lock_ctx)


def _install(runtime: GoRuntime, lock: str, root: Path, cache: Path) -> Path:
    ctx = make_context(runtime, "package inner\n\nfunc main() {}\n", {}, root, cache_dir=cache)
    target = root / "envs" / "go" / "install"
    target.mkdir(parents=True)
    recipes = runtime.prepare_install(ctx, lock, target)
    assert [(r.phase, r.failure_name) for r in recipes] == [("install", "InstallError")]
    done = _run_steps(recipes)
    assert done.returncode == 0, done.stdout
    return target


def _locked_context(
    runtime: GoRuntime,
    code: str,
    args: dict[str, Any],
    root: Path,
    cache: Path,
    lock: str,
    deps: Path,
) -> JobContext:
    ctx = make_context(runtime, code, args, root, cache_dir=cache)
    return dataclasses.replace(ctx, lock=lock, deps_dir=deps)


def _execute(runtime: GoRuntime, ctx: JobContext) -> RanJob:
    output: list[str] = []
    execution = asyncio.run(execute(runtime, ctx, on_output=output.append, cancel=asyncio.Event()))
    assert execution.outcome is not None
    return RanJob(execution.outcome, "".join(output), ctx.job_dir)


def test_a_local_module_is_locked_installed_and_run_offline(
    go_build_cache: Path, tmp_path: Path, greet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    runtime = _runtime(go_build_cache)
    cache = tmp_path / "cache"
    code = GREET_SCRIPT.format(greet=greet)

    lock = _lock(runtime, code, tmp_path, cache)
    go_mod, _, go_sum = lock.partition("//go.sum\n")
    assert go_mod.startswith("module script\n")
    assert "require example.com/greet v0.0.0\n" in go_mod
    assert f"replace example.com/greet => {greet}\n" in go_mod
    assert go_sum == ""  # nothing downloaded: the module is a directory

    deps = _install(runtime, lock, tmp_path, cache)
    assert (deps / "go.mod").read_text() == go_mod

    ctx = _locked_context(runtime, code, {"name": "Ada"}, tmp_path, cache, lock, deps)
    build, _ = runtime.prepare(ctx)
    assert build.env["GOFLAGS"] == "-mod=readonly"
    assert (build.env["GOPROXY"], build.env["GOSUMDB"]) == ("off", "off")
    assert (build.cwd / "go.mod").read_text() == go_mod
    first = _execute(runtime, ctx)
    assert first.outcome.success, first.outcome.result_json
    assert first.result == "hello Ada"

    # The program is cached under a key of the lock: the next job only runs it.
    ctx = _locked_context(runtime, code, {"name": "Bob"}, tmp_path, cache, lock, deps)
    steps = runtime.prepare(ctx)
    assert [step.phase for step in steps] == ["run"]
    assert _execute(runtime, ctx).result == "hello Bob"

    # An edit of the module's directory is a new program.
    (greet / "greet.go").write_text(
        'package greet\n\nfunc Hello(name string) string { return "hi " + name }\n'
    )
    ctx = _locked_context(runtime, code, {"name": "Cy"}, tmp_path, cache, lock, deps)
    assert [step.phase for step in runtime.prepare(ctx)] == ["build", "run"]
    assert _execute(runtime, ctx).result == "hi Cy"


def test_modules_from_a_proxy_are_pinned_by_go_sum_and_built_offline(
    go_build_cache: Path, tmp_path: Path, proxy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")  # the checksum database does not know these modules
    runtime = _runtime(go_build_cache)

    lock = _lock(runtime, SHOUT_SCRIPT, tmp_path, tmp_path / "locker")
    go_mod, _, go_sum = lock.partition("//go.sum\n")
    assert "example.com/shout v1.0.0" in go_mod
    assert "example.com/caps v1.1.0 // indirect" in go_mod
    assert sorted(line.split(" h1:")[0] for line in go_sum.splitlines()) == [
        "example.com/caps v1.1.0",
        "example.com/caps v1.1.0/go.mod",
        "example.com/shout v1.0.0",
        "example.com/shout v1.0.0/go.mod",
    ]

    # Another worker: an empty module cache; the install fills the lock's own.
    worker = tmp_path / "worker"
    deps = _install(runtime, lock, tmp_path, worker)
    assert (deps / "mod" / "example.com" / "shout@v1.0.0").is_dir()
    assert not (worker / "gopath" / "pkg" / "mod" / "example.com").exists()
    ctx = _locked_context(runtime, SHOUT_SCRIPT, {"name": "Ada"}, tmp_path, worker, lock, deps)
    assert runtime.prepare(ctx)[0].env["GOMODCACHE"] == str(deps / "mod")

    # Through the core (which installs the lock into its own environment cache) ...
    ran = _execute(runtime, ctx)
    assert ran.outcome.success, ran.outcome.result_json
    assert ran.result == "ADA!"
    # ... then without the proxy: a new program of the same lock builds offline.
    shutil.rmtree(proxy)
    quiet = SHOUT_SCRIPT.replace("return shout.Shout(name)", 'return shout.Shout(name) + "?"')
    ctx = _locked_context(runtime, quiet, {"name": "Bo"}, tmp_path, worker, lock, deps)
    assert [step.phase for step in runtime.prepare(ctx)] == ["build", "run"]
    ran = _execute(runtime, ctx)
    assert ran.outcome.success, ran.outcome.result_json
    assert ran.result == "BO!?"
    # The environment is the core's to delete with plain file operations.
    shutil.rmtree(deps)


def test_an_install_copies_what_the_lock_downloaded_on_this_host(
    go_build_cache: Path, tmp_path: Path, proxy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")
    runtime = _runtime(go_build_cache)
    cache = tmp_path / "cache"
    lock = _lock(runtime, SHOUT_SCRIPT, tmp_path, cache)
    shutil.rmtree(proxy)  # the lock's downloads are all the install has
    deps = _install(runtime, lock, tmp_path, cache)
    assert (deps / "mod" / "example.com" / "caps@v1.1.0" / "caps.go").is_file()


def test_a_tampered_module_fails_the_install(
    go_build_cache: Path, tmp_path: Path, proxy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", proxy.as_uri())
    monkeypatch.setenv("GOSUMDB", "off")
    runtime = _runtime(go_build_cache)
    lock = _lock(runtime, SHOUT_SCRIPT, tmp_path, tmp_path / "locker")
    shutil.rmtree(proxy / "example.com" / "shout")
    _publish(
        proxy,
        "example.com/shout",
        "v1.0.0",
        {"shout.go": 'package shout\n\nfunc Shout(s string) string { return "pwned" }\n'},
    )
    ctx = make_context(runtime, SHOUT_SCRIPT, {}, tmp_path, cache_dir=tmp_path / "worker")
    target = tmp_path / "target"
    target.mkdir()
    done = _run_steps(runtime.prepare_install(ctx, lock, target))
    assert done.returncode != 0
    assert "SECURITY ERROR" in done.stdout and "example.com/shout@v1.0.0" in done.stdout


def test_a_module_that_cannot_be_found_fails_the_lock_with_gos_message(
    go_build_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    runtime = _runtime(go_build_cache)
    code = 'package inner\n\nimport "example.com/nothere"\n\nfunc main() {\n\tnothere.Do()\n}\n'
    ctx = make_context(runtime, code, {}, tmp_path)
    inputs = runtime.lock_inputs(code)
    assert inputs == "// import example.com/nothere\n"
    done = _run_steps(runtime.prepare_lock(ctx, inputs))
    assert done.returncode != 0
    assert "cannot find module providing package example.com/nothere" in done.stdout
    assert "module lookup disabled by GOPROXY=off" in done.stdout

    pinned = code.replace("\n\nfunc", "\n\n//require example.com/nothere v1.2.3\n\nfunc")
    ctx = make_context(runtime, pinned, {}, tmp_path)
    done = _run_steps(runtime.prepare_lock(ctx, runtime.lock_inputs(pinned) or ""))
    assert done.returncode != 0
    assert "go: downloading example.com/nothere v1.2.3" in done.stdout
    assert "example.com/nothere: module lookup disabled by GOPROXY=off" in done.stdout


def test_a_locked_build_uses_exactly_the_lock(
    go_build_cache: Path, tmp_path: Path, greet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    runtime = _runtime(go_build_cache)
    code = GREET_SCRIPT.format(greet=greet)
    lock = _lock(runtime, code, tmp_path, tmp_path / "cache")
    deps = _install(runtime, lock, tmp_path, tmp_path / "cache")

    # Nothing of the job's environment loosens it (a plugin's job_env, say).
    ctx = _locked_context(runtime, code, {"name": "x"}, tmp_path, tmp_path / "cache", lock, deps)
    ctx = dataclasses.replace(
        ctx, env={**ctx.env, "GOFLAGS": "-mod=mod", "GOPROXY": "https://proxy.example"}
    )
    build = runtime.prepare(ctx)[0]
    assert (build.env["GOFLAGS"], build.env["GOPROXY"]) == ("-mod=readonly", "off")

    # An import the lock does not hold fails the build, with a hint to lock again.
    other = code.replace('"strings"\n', '"strings"\n\n\t"example.com/other"\n').replace(
        "return strings", "_ = other.X\n\treturn strings"
    )
    ctx = _locked_context(runtime, other, {"name": "x"}, tmp_path, tmp_path / "cache", lock, deps)
    error = _execute(runtime, ctx).result["error"]
    assert error["name"] == "CompilationError"
    assert "cannot find module providing package example.com/other" in error["message"]
    assert "lock the script again" in error["message"]
    assert "go get" not in error["message"]

    # Another lock is another program.
    changed = lock.replace("//go.sum\n", "// another lock\n//go.sum\n")
    keys = set()
    for text in (lock, changed):
        ctx = _locked_context(runtime, code, {}, tmp_path, tmp_path / "cache", text, deps)
        keys.add(runtime.prepare(ctx)[0].argv[-1])
    assert len(keys) == 2


def test_the_lock_and_install_environment(
    go_build_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "GOPROXY": "https://goproxy.example,direct",
        "GONOSUMDB": "example.com/private",
        "GOFLAGS": "-insecure",
        "NETRC": "/etc/gristmill/netrc",
        "HTTPS_PROXY": "http://proxy.example:3128",
        "SSL_CERT_FILE": "/etc/ssl/corp.pem",
        "GRISTMILL_SECRET_OF_THE_WORKER": "x",
    }.items():
        monkeypatch.setenv(name, value)
    runtime = _runtime(go_build_cache)
    code = "package inner\n\n//require example.com/tool v1.0.0\n\nfunc main() {}\n"
    ctx = make_context(runtime, code, {}, tmp_path)
    locking = runtime.prepare_lock(ctx, runtime.lock_inputs(code) or "")
    lock = locking[0]
    assert all(r.env == lock.env for r in locking)
    (install,) = runtime.prepare_install(ctx, "module script\n", tmp_path / "target")
    assert ctx.cache_dir is not None
    shared = ctx.cache_dir / "gopath" / "pkg" / "mod"
    assert lock.env["GOPROXY"] == "https://goproxy.example,direct"
    assert lock.env["GOFLAGS"] == "-insecure"
    assert lock.env["GOMODCACHE"] == str(shared)
    # The install: the lock's downloads on this host first, then the worker's proxy.
    assert install.env["GOPROXY"] == (
        f"{(shared / 'cache' / 'download').as_uri()},https://goproxy.example,direct"
    )
    assert install.env["GOFLAGS"] == "-insecure -modcacherw"
    assert install.env["GOMODCACHE"] == str(tmp_path / "target" / "mod")
    for recipe in (lock, install):
        env = recipe.env
        assert env["GONOSUMDB"] == "example.com/private"
        assert env["NETRC"] == "/etc/gristmill/netrc"
        assert env["HTTPS_PROXY"] == "http://proxy.example:3128"
        assert env["SSL_CERT_FILE"] == "/etc/ssl/corp.pem"
        assert env["GOTOOLCHAIN"] == "local"
        assert env["GOCACHE"] == str(go_build_cache)
        assert env["WM_JOB_ID"] == ctx.env["WM_JOB_ID"]
        assert "GRISTMILL_SECRET_OF_THE_WORKER" not in env
    assert [r.argv[1:] for r in locking] == [["mod", "tidy"], ["mod", "download"]]
    assert lock.cwd == ctx.job_dir
    assert install.argv[1:] == ["mod", "download"] and install.cwd == tmp_path / "target"
    assert (ctx.job_dir / "go.mod").read_text().endswith("require example.com/tool v1.0.0\n")
    assert (ctx.job_dir / "inner" / "main.go").read_text() == code


def test_a_script_without_modules_is_built_as_before(go_build_cache: Path, tmp_path: Path) -> None:
    runtime = _runtime(go_build_cache)
    code = 'package inner\n\nimport "fmt"\n\nfunc main(name string) string {\n\treturn fmt.Sprint(name)\n}\n'
    assert runtime.lock_inputs(code) is None
    ctx = make_context(runtime, code, {"name": "Ada"}, tmp_path)
    build, _ = runtime.prepare(ctx)
    assert build.env["GOFLAGS"] == "-mod=mod"
    assert not (build.cwd / "go.sum").exists()
    assert _execute(runtime, ctx).result == "Ada"


def test_a_lock_windmill_made_runs(
    go_build_cache: Path, tmp_path: Path, greet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    runtime = _runtime(go_build_cache)
    # Windmill's go.mod says `module mymod` and an older go line.
    lock = (
        "module mymod\n\ngo 1.21\n\nrequire example.com/greet v0.0.0\n\n"
        f"replace example.com/greet => {greet}\n//go.sum\n"
    )
    ran = run_job(runtime, GREET_SCRIPT.format(greet=greet), {"name": "Ada"}, tmp_path, lock=lock)
    assert ran.outcome.success, ran.outcome.result_json
    assert ran.result == "hello Ada"


def test_the_core_locks_installs_and_runs_a_script(
    go_build_cache: Path, tmp_path: Path, greet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOPROXY", "off")
    runtime = _runtime(go_build_cache)
    code = GREET_SCRIPT.format(greet=greet)
    cache = tmp_path / "cache" / "go"
    first = run_job(runtime, code, {"name": "Ada"}, tmp_path, cache_dir=cache)
    assert first.outcome.success, first.outcome.result_json
    assert first.result == "hello Ada"
    (env,) = [p for p in (tmp_path / "cache" / "envs" / "go").iterdir() if p.is_dir()]
    assert (env / "go.mod").is_file()
    again = run_job(runtime, code, {"name": "Bob"}, tmp_path, cache_dir=cache)
    assert again.result == "hello Bob"
