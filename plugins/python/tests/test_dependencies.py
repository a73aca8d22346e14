"""Locking, installing and importing a script's dependencies: the recipes, and real runs of
uv against PyPI (marked slow)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gristmill.runtimes import JobContext, Recipe, ScriptError
from gristmill.testing.runner import lock_script, make_context, run_job
from gristmill_python import dependencies
from gristmill_python.runtime import INTERPRETER_FLAGS, PythonRuntime

RUNTIME = PythonRuntime()
INDEX_SETTINGS = [name for name in dependencies._PASSED_THROUGH if name.startswith("UV_")]
VERSION = RUNTIME.python_version()

YAML_AND_REQUESTS = """\
import requests
import yaml


def main(name: str = "world"):
    return {"yaml": yaml.safe_dump({"hello": name}), "requests": requests.__version__}
"""


@pytest.fixture
def ctx(tmp_path: Path) -> JobContext:
    return make_context(RUNTIME, "def main():\n    return 1\n", {}, tmp_path)


@pytest.fixture
def worker_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The worker's environment without index settings; its network settings (proxies, the
    certificates this machine needs to reach PyPI) stay."""
    for name in [*INDEX_SETTINGS, *dependencies._PIP_SETTINGS, "UV_PATH"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def run(recipe: Recipe, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a recipe as the core does: its argv, its complete environment, its directory."""
    return subprocess.run(
        list(recipe.argv),
        env=dict(recipe.env),
        cwd=recipe.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- recipes -------------------------------------------------------------------------------


def test_lock_recipe(ctx: JobContext, worker_env: pytest.MonkeyPatch) -> None:
    """requirements.in in the job directory; uv pip compile against the job interpreter."""
    worker_env.setenv("GRISTMILL_SECRET_OF_THE_WORKER", "x")
    for name in ("HTTPS_PROXY", "https_proxy", "SSL_CERT_FILE"):
        worker_env.delenv(name, raising=False)
    recipe = RUNTIME.prepare_lock(ctx, "PyYAML\nrequests\n")
    assert (ctx.job_dir / "requirements.in").read_text() == "PyYAML\nrequests\n"
    assert recipe.phase == "lock"
    assert recipe.failure_name == "LockError"
    assert recipe.cwd == ctx.job_dir
    argv = list(recipe.argv)
    assert Path(argv[0]).is_absolute() and os.access(argv[0], os.X_OK)
    assert argv[1:3] == ["pip", "compile"]
    for flag in ("--no-header", "--strip-extras", "requirements.in"):
        assert flag in argv
    assert argv[argv.index("--output-file") + 1] == "requirements.txt"
    assert argv[argv.index("--python") + 1] == RUNTIME.interpreter
    assert ctx.cache_dir is not None
    assert argv[argv.index("--cache-dir") + 1] == str(ctx.cache_dir / "uv")
    env = dict(recipe.env)
    assert env["HOME"] == str(ctx.job_dir)
    assert env["PATH"]
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    # Complete and minimal: neither the worker's variables nor the job's token reach uv.
    assert "GRISTMILL_SECRET_OF_THE_WORKER" not in env
    assert not any(name.startswith("WM_") for name in env)
    assert "UV_INDEX_URL" not in env
    assert "SSL_CERT_FILE" not in env and "HTTPS_PROXY" not in env


def test_index_settings_reach_uv(ctx: JobContext, worker_env: pytest.MonkeyPatch) -> None:
    """Windmill's PIP_* names become uv's, in the environment (not the command line, where
    the credentials of an index URL would be visible to every user of the machine)."""
    index = "https://user:secret@pypi.example.com/simple"
    worker_env.setenv("PIP_INDEX_URL", index)
    worker_env.setenv("PIP_EXTRA_INDEX_URL", "https://a.example/simple https://b.example/simple")
    worker_env.setenv("PIP_TRUSTED_HOST", "a.example")
    for name, value in {
        "UV_HTTP_TIMEOUT": "7",
        "HTTPS_PROXY": "http://proxy:3128",
        "HTTP_PROXY": "http://proxy:3128",
        "NO_PROXY": "localhost",
        "SSL_CERT_FILE": "/etc/ssl/ca.pem",
        "SSL_CERT_DIR": "/etc/ssl/certs",
    }.items():
        worker_env.setenv(name, value)
    for recipe in (
        RUNTIME.prepare_lock(ctx, "requests\n"),
        RUNTIME.prepare_install(ctx, f"# py: {VERSION}\nrequests==2.32.3\n", ctx.job_dir / "t"),
    ):
        env = dict(recipe.env)
        assert env["UV_INDEX_URL"] == index
        assert env["UV_EXTRA_INDEX_URL"] == "https://a.example/simple https://b.example/simple"
        assert env["UV_INSECURE_HOST"] == "a.example"
        assert env["UV_HTTP_TIMEOUT"] == "7"
        assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "http://proxy:3128"
        assert env["NO_PROXY"] == "localhost"
        assert env["SSL_CERT_FILE"] == "/etc/ssl/ca.pem"
        assert env["SSL_CERT_DIR"] == "/etc/ssl/certs"
        assert not any("secret" in arg for arg in recipe.argv)


def test_uv_index_url_wins_over_pip_index_url(
    ctx: JobContext, worker_env: pytest.MonkeyPatch
) -> None:
    worker_env.setenv("PIP_INDEX_URL", "https://pip.example/simple")
    worker_env.setenv("UV_INDEX_URL", "https://uv.example/simple")
    env = dict(RUNTIME.prepare_lock(ctx, "requests\n").env)
    assert env["UV_INDEX_URL"] == "https://uv.example/simple"


def test_job_env_settings_win(ctx: JobContext, worker_env: pytest.MonkeyPatch) -> None:
    """An index chosen for the job (a job_env hook) wins over the worker's; the job's other
    variables (its token) do not reach uv."""
    worker_env.setenv("PIP_INDEX_URL", "https://worker.example/simple")
    job = replace(
        ctx, env={**ctx.env, "PIP_INDEX_URL": "https://job.example/simple", "WM_TOKEN": "t"}
    )
    env = dict(RUNTIME.prepare_lock(job, "requests\n").env)
    assert env["UV_INDEX_URL"] == "https://job.example/simple"
    assert "WM_TOKEN" not in env


def test_uv_binary(worker_env: pytest.MonkeyPatch) -> None:
    """The uv package's binary by default; UV_PATH or the constructor choose another."""
    from uv import find_uv_bin

    assert PythonRuntime().uv == find_uv_bin()
    worker_env.setenv("UV_PATH", "/opt/uv/bin/uv")
    assert PythonRuntime().uv == "/opt/uv/bin/uv"
    assert PythonRuntime(uv="/x/uv").uv == "/x/uv"


def test_read_lock(ctx: JobContext) -> None:
    """Windmill's format: '# py: X.Y' then the pins, comments and blank lines dropped."""
    (ctx.job_dir / "requirements.txt").write_text(
        "# This file was autogenerated by uv\n"
        "certifi==2024.8.30\n"
        "    # via requests\n"
        "\n"
        "requests==2.32.3\n",
        encoding="utf-8",
    )
    assert RUNTIME.read_lock(ctx) == f"# py: {VERSION}\ncertifi==2024.8.30\nrequests==2.32.3\n"


def test_read_lock_of_nothing_to_install(ctx: JobContext) -> None:
    """Every requirement excluded by its marker: an empty lock, the job runs without env."""
    (ctx.job_dir / "requirements.txt").write_text("# nothing\n", encoding="utf-8")
    assert RUNTIME.read_lock(ctx) == ""


def test_python_version_is_major_minor() -> None:
    import sys

    assert f"{sys.version_info.major}.{sys.version_info.minor}" == VERSION


@pytest.mark.parametrize(
    ("lock", "version"),
    [
        ("# py: 3.11\nrequests==2.32.3\n", "3.11"),
        ("#py:3.12\nrequests==2.32.3\n", "3.12"),
        ("\n# py: 3.13  \n", "3.13"),
        ("requests==2.32.3\n", None),
        ("requests==2.32.3\n# py: 3.11\n", None),
    ],
)
def test_lock_python_version(lock: str, version: str | None) -> None:
    assert dependencies.lock_python_version(lock) == version


def test_install_recipe(ctx: JobContext, tmp_path: Path) -> None:
    """uv pip install --no-deps --target, the lock written outside the target."""
    target = tmp_path / "env"
    target.mkdir()
    lock = f"# py: {VERSION}\nrequests==2.32.3\n"
    recipe = RUNTIME.prepare_install(ctx, lock, target)
    assert isinstance(recipe, Recipe)
    assert recipe.phase == "install"
    assert recipe.failure_name == "InstallError"
    argv = list(recipe.argv)
    assert argv[1:3] == ["pip", "install"]
    assert "--no-deps" in argv
    assert argv[argv.index("--target") + 1] == str(target)
    assert argv[argv.index("--python") + 1] == RUNTIME.interpreter
    assert argv[argv.index("--link-mode") + 1] == "hardlink"
    requirements = Path(argv[argv.index("--requirements") + 1])
    assert requirements.read_text() == lock
    assert target not in requirements.parents
    assert list(target.iterdir()) == []
    assert dict(recipe.env)["HOME"] == str(ctx.job_dir)


def test_install_refuses_a_lock_for_another_python(ctx: JobContext, tmp_path: Path) -> None:
    """A lock made for another Python fails the install with a clear message (ScriptError,
    which the core reports as the job's InstallError)."""
    with pytest.raises(ScriptError) as info:
        RUNTIME.prepare_install(ctx, "# py: 3.7\nrequests==2.31.0\n", tmp_path)
    assert "3.7" in info.value.message
    assert VERSION in info.value.message


def test_install_accepts_a_lock_without_version_line(ctx: JobContext, tmp_path: Path) -> None:
    recipe = RUNTIME.prepare_install(ctx, "requests==2.32.3\n", tmp_path)
    assert recipe.phase == "install"


def test_prepare_without_dependencies_is_unchanged(ctx: JobContext) -> None:
    """No deps_dir: the same command as before dependencies existed."""
    recipe = RUNTIME.prepare(ctx)
    assert list(recipe.argv) == [RUNTIME.interpreter, *INTERPRETER_FLAGS, RUNTIME.wrapper]
    assert dict(recipe.env) == dict(ctx.env)


def test_prepare_with_dependencies(ctx: JobContext, tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    recipe = RUNTIME.prepare(replace(ctx, lock="# py: 3.11\nx==1\n", deps_dir=deps))
    argv = list(recipe.argv)
    assert argv[argv.index("--deps") + 1] == str(deps)


def test_wrapper_imports_from_deps_dir_and_runs_pth_files(tmp_path: Path) -> None:
    """The installed directory is importable, after the standard library, and its .pth
    files run (as site-packages' would), though the job runs with -I -S."""
    deps = tmp_path / "deps"
    (deps / "greeting").mkdir(parents=True)
    (deps / "greeting" / "__init__.py").write_text("WORD = 'hi'\n")
    # A backport must not shadow the standard library.
    (deps / "json").mkdir()
    (deps / "json" / "__init__.py").write_text("raise ImportError('the PyPI one')\n")
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "from_pth.py").write_text("VALUE = 42\n")
    (deps / "extra.pth").write_text(f"{extra}\n")
    code = (
        "import json\nimport greeting\nimport from_pth\n\n"
        "def main():\n    return [greeting.WORD, from_pth.VALUE, json.dumps(1)]\n"
    )
    ctx = make_context(RUNTIME, code, {}, tmp_path / "jobs")
    recipe = RUNTIME.prepare(replace(ctx, deps_dir=deps))
    done = run(recipe, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads((ctx.job_dir / "result.json").read_text()) == ["hi", 42, "1"]


# --- real resolutions and installs (uv, PyPI) ----------------------------------------------


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One runtime cache (and so one uv cache) for the module: downloads happen once."""
    path = tmp_path_factory.mktemp("cache") / "python3"
    path.mkdir()
    return path


def lock_with_recipes(ctx: JobContext, source: str) -> tuple[subprocess.CompletedProcess[str], str]:
    inputs = RUNTIME.lock_inputs(source)
    assert inputs is not None
    done = run(RUNTIME.prepare_lock(ctx, inputs))
    return done, done.stdout + done.stderr


@pytest.mark.slow
def test_lock_install_and_run_with_recipes(
    tmp_path: Path, shared_cache: Path, worker_env: pytest.MonkeyPatch
) -> None:
    """The three phases by hand: compile, install into a fresh directory, run."""
    ctx = make_context(
        RUNTIME, YAML_AND_REQUESTS, {"name": "Ada"}, tmp_path, cache_dir=shared_cache
    )
    lock_dir = ctx.job_dir / "lock"
    lock_dir.mkdir()
    lock_ctx = replace(ctx, job_dir=lock_dir)
    done, output = lock_with_recipes(lock_ctx, YAML_AND_REQUESTS)
    assert done.returncode == 0, output
    lock = RUNTIME.read_lock(lock_ctx)
    lines = lock.splitlines()
    assert lines[0] == f"# py: {VERSION}"
    assert any(line.startswith("requests==") for line in lines)
    assert any(line.startswith("pyyaml==") for line in lines)
    assert any(line.startswith("urllib3==") for line in lines)  # the transitive ones too
    assert all("==" in line for line in lines[1:])

    target = tmp_path / "env"
    target.mkdir()
    done = run(RUNTIME.prepare_install(ctx, lock, target))
    assert done.returncode == 0, done.stdout + done.stderr
    names = {p.name for p in target.iterdir()}
    assert {"requests", "yaml", "urllib3"} <= names
    assert not any(name.startswith("requirements") for name in names)

    done = run(RUNTIME.prepare(replace(ctx, lock=lock, deps_dir=target)), timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads((ctx.job_dir / "result.json").read_text())
    pinned = next(line for line in lines if line.startswith("requests=="))
    assert result == {"yaml": "hello: Ada\n", "requests": pinned.split("==")[1]}


@pytest.mark.slow
def test_run_job_locks_installs_once_and_reuses(
    tmp_path: Path, shared_cache: Path, worker_env: pytest.MonkeyPatch
) -> None:
    """Through the core: the first job locks and installs, later ones reuse the env."""
    first = run_job(RUNTIME, YAML_AND_REQUESTS, {}, tmp_path, cache_dir=shared_cache)
    assert first.outcome.success, first.outcome.result_json + first.logs
    assert first.result["yaml"] == "hello: world\n"
    assert "installing" in first.logs
    start = time.perf_counter()
    again = run_job(RUNTIME, YAML_AND_REQUESTS, {"name": "Bo"}, tmp_path, cache_dir=shared_cache)
    elapsed = time.perf_counter() - start
    assert again.result == {"yaml": "hello: Bo\n", "requests": first.result["requests"]}
    assert "installing" not in again.logs
    assert elapsed < 5, elapsed
    envs = list((shared_cache.parent / "envs" / "python3").iterdir())
    assert len([e for e in envs if e.is_dir()]) >= 1


@pytest.mark.slow
def test_pinned_version_is_installed(
    tmp_path: Path, shared_cache: Path, worker_env: pytest.MonkeyPatch
) -> None:
    code = "import six  # pin: six==1.16.0\n\ndef main():\n    return six.__version__\n"
    ran = run_job(RUNTIME, code, {}, tmp_path, cache_dir=shared_cache)
    assert ran.result == "1.16.0", ran.outcome.result_json + ran.logs


@pytest.mark.slow
def test_stored_lock_for_another_python_fails_the_job(
    tmp_path: Path, shared_cache: Path, worker_env: pytest.MonkeyPatch
) -> None:
    lock = "# py: 3.7\nsix==1.16.0\n"
    ran = run_job(RUNTIME, "import six\ndef main():\n    return 1\n", {}, tmp_path,
                  cache_dir=shared_cache, lock=lock)  # fmt: skip
    assert not ran.outcome.success
    error: dict[str, Any] = ran.result["error"]
    assert error["name"] == "InstallError"
    assert "Python 3.7" in error["message"]


@pytest.mark.slow
def test_unknown_package_fails_the_lock_with_uvs_message(
    tmp_path: Path, shared_cache: Path, worker_env: pytest.MonkeyPatch
) -> None:
    source = "# requirements:\n#this-package-does-not-exist-gristmill==1.0\n"
    ctx = make_context(RUNTIME, "def main():\n    pass\n", {}, tmp_path, cache_dir=shared_cache)
    done, output = lock_with_recipes(ctx, source)
    assert done.returncode != 0
    assert "this-package-does-not-exist-gristmill" in output
    assert "not found in the package registry" in output
    # Through the core: the job fails with LockError and the same message.
    outcome, logs = lock_script(RUNTIME, source + "def main():\n    pass\n", tmp_path,
                                cache_dir=shared_cache)  # fmt: skip
    assert outcome.lock is None and outcome.error is not None
    assert outcome.error.outcome is not None
    error = json.loads(outcome.error.outcome.result_json)["error"]
    assert error["name"] == "LockError"
    assert "not found in the package registry" in error["message"]
    assert "not found in the package registry" in logs


@pytest.mark.slow
def test_version_conflict_fails_with_the_resolvers_message(
    tmp_path: Path, shared_cache: Path, worker_env: pytest.MonkeyPatch
) -> None:
    """requests 2.31.0 needs urllib3>=1.21.1: asking for urllib3<1.21 cannot be satisfied."""
    source = "# requirements:\n#requests==2.31.0\n#urllib3<1.21\n"
    ctx = make_context(RUNTIME, "def main():\n    pass\n", {}, tmp_path, cache_dir=shared_cache)
    done, output = lock_with_recipes(ctx, source)
    assert done.returncode != 0
    assert "No solution found" in output
    assert "requests==2.31.0 depends on urllib3" in output


@pytest.fixture
def silent_index() -> Iterator[str]:
    """An index that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.1)  # so that the accepting thread sees the end of the test
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/simple"
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.slow
def test_registry_timeout_fails_in_bounded_time(
    tmp_path: Path, silent_index: str, worker_env: pytest.MonkeyPatch
) -> None:
    """A registry that never answers: uv gives up after UV_HTTP_TIMEOUT (per attempt) and
    its retries, and says so."""
    worker_env.setenv("PIP_INDEX_URL", silent_index)
    worker_env.setenv("UV_HTTP_TIMEOUT", "2")
    worker_env.setenv("UV_HTTP_RETRIES", "1")
    # A cache of its own: nothing already resolved may answer for the index.
    ctx = make_context(RUNTIME, "def main():\n    pass\n", {}, tmp_path)
    start = time.perf_counter()
    done, output = lock_with_recipes(ctx, "import requests\n")
    elapsed = time.perf_counter() - start
    assert done.returncode != 0
    assert "timed out" in output
    assert silent_index.removesuffix("/simple") in output
    assert elapsed < 30, elapsed
