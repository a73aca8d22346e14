"""Python jobs under bubblewrap: what each step declares, and real jobs run as a worker runs
them (lock, install and run sandboxed), including what a job must not be able to do."""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from gristmill import Limits, Mount
from gristmill.runtimes import JobContext
from gristmill.sandbox import RunPolicy
from gristmill.sandbox.spec import SYSTEM_DIRS, is_under
from gristmill.testing.runner import make_context, run_job
from gristmill_python.runtime import MEMORY_LIMIT_MB, PythonRuntime

RUNTIME = PythonRuntime()

YAML_AND_REQUESTS = """\
import requests
import yaml


def main(name: str = "world"):
    return {"yaml": yaml.safe_dump({"hello": name}), "requests": requests.__version__}
"""


@pytest.fixture
def ctx(tmp_path: Path) -> JobContext:
    return make_context(RUNTIME, "def main():\n    return 1\n", {}, tmp_path)


def _sources(mounts: list[Mount] | tuple[Mount, ...]) -> dict[str, bool]:
    return {m.source: m.writable for m in mounts}


def _covered(path: str, mounts: dict[str, bool]) -> bool:
    """Visible in the sandbox: declared, or in a system directory every step sees (a system
    Python's prefix is /usr)."""
    return any(is_under(path, src) for src in [*mounts, *SYSTEM_DIRS])


# --- what each step declares -----------------------------------------------------------------


def test_run_step_mounts_the_interpreter_and_wrapper(ctx: JobContext) -> None:
    """The interpreter, its standard library and the wrapper, read-only; 4096 MB of address
    space per process (Windmill's limit); the worker's network policy."""
    recipe = RUNTIME.prepare(ctx)
    mounts = _sources(recipe.mounts)
    assert not any(mounts.values()), mounts
    for path in (RUNTIME.interpreter, RUNTIME.wrapper, os.path.join(sys.base_prefix, "lib")):
        assert path.startswith(("/usr/", "/bin/", "/lib")) or _covered(path, mounts), path
    assert recipe.limits == Limits(memory_mb=MEMORY_LIMIT_MB)
    assert recipe.network is None
    recipe.validate()


def test_run_step_mounts_deps_dir_read_only(ctx: JobContext, tmp_path: Path) -> None:
    deps = tmp_path / "deps"
    recipe = RUNTIME.prepare(replace(ctx, lock="# py: 3.11\nx==1\n", deps_dir=deps))
    assert _sources(recipe.mounts)[str(deps)] is False


def test_lock_step_has_the_cache_writable_and_the_network(ctx: JobContext) -> None:
    recipe = RUNTIME.prepare_lock(ctx, "requests\n")
    mounts = _sources(recipe.mounts)
    assert ctx.cache_dir is not None
    cache = str(ctx.cache_dir / "uv")
    assert mounts.pop(cache) is True and os.path.isdir(cache)
    assert not any(mounts.values()), "only the cache is writable"
    assert _covered(RUNTIME.uv, mounts) and _covered(RUNTIME.interpreter, mounts)
    assert recipe.network is True
    recipe.validate()


def test_install_step_has_the_cache_and_target_writable(ctx: JobContext, tmp_path: Path) -> None:
    target = tmp_path / "env"
    target.mkdir()
    version = RUNTIME.python_version()
    recipe = RUNTIME.prepare_install(ctx, f"# py: {version}\nsix==1.16.0\n", target)
    mounts = _sources(recipe.mounts)
    assert ctx.cache_dir is not None
    assert mounts.pop(str(ctx.cache_dir / "uv")) is True
    assert mounts.pop(str(target)) is True
    assert not any(mounts.values())
    assert _covered(RUNTIME.uv, mounts)
    assert recipe.network is True
    recipe.validate()


def test_venv_interpreter_runs_in_the_sandbox(
    sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    """An interpreter given as a virtual environment's python (PYTHON_PATH) finds its prefix
    through the environment's pyvenv.cfg: mounted too, with the base prefix."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtual environment")
    runtime = PythonRuntime(interpreter=os.path.join(sys.prefix, "bin", "python"))
    ctx = make_context(runtime, "def main():\n    pass\n", {}, sandbox_root)
    mounts = _sources(runtime.prepare(ctx).mounts)
    assert os.path.join(sys.prefix, "pyvenv.cfg") in mounts
    assert _covered(sys.base_prefix, mounts)
    code = "import sys\n\n\ndef main():\n    return [sys.version, sys.base_prefix]\n"
    ran = run_job(runtime, code, {}, sandbox_root, policy=sandbox_policy)
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    assert ran.result == [sys.version, sys.base_prefix]


# --- real jobs under bwrap -------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_cache(sandbox_data_dir: Path) -> Iterator[Path]:
    """One runtime cache for the module's sandboxed jobs (so uv downloads once), among the
    data directory's caches (the only part of it, besides its own job directory, a step may
    mount), where the sandbox's user can reach it."""
    path = sandbox_data_dir / "cache" / "python-sandbox" / "python3"
    path.mkdir(parents=True, exist_ok=True)
    for parent in (path.parent, path.parent.parent):
        parent.chmod(0o755)
    yield path


@pytest.mark.slow
def test_dependencies_lock_install_and_run_in_the_sandbox(
    sandbox_policy: RunPolicy, sandbox_root: Path, sandbox_cache: Path
) -> None:
    """requests and yaml: locked, installed and imported with every step in bwrap."""
    ran = run_job(
        RUNTIME,
        YAML_AND_REQUESTS,
        {"name": "Ada"},
        sandbox_root,
        cache_dir=sandbox_cache,
        policy=sandbox_policy,
        timeout_s=300,
    )
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    assert ran.result["yaml"] == "hello: Ada\n"
    assert ran.result["requests"]
    again = run_job(
        RUNTIME, YAML_AND_REQUESTS, {}, sandbox_root, cache_dir=sandbox_cache, policy=sandbox_policy
    )
    assert again.outcome.success, f"{again.outcome.result_json}\nlogs:\n{again.logs}"
    assert "installing" not in again.logs
    assert again.result["yaml"] == "hello: world\n"


@pytest.mark.slow
def test_deps_dir_is_read_only_inside_the_job(
    sandbox_policy: RunPolicy, sandbox_root: Path, sandbox_cache: Path
) -> None:
    """A job cannot change the environment every job of its lock shares."""
    code = (
        "import os\nimport yaml\n\n\n"
        "def main():\n"
        "    deps = os.path.dirname(os.path.dirname(yaml.__file__))\n"
        "    outcomes = {}\n"
        "    for path in (os.path.join(deps, 'planted.py'), yaml.__file__):\n"
        "        try:\n"
        "            with open(path, 'a') as f:\n"
        "                f.write('x = 1\\n')\n"
        "            outcomes[path] = 'written'\n"
        "        except OSError as exc:\n"
        "            outcomes[path] = exc.strerror\n"
        "    return {'deps': deps, 'outcomes': outcomes}\n"
    )
    ran = run_job(
        RUNTIME,
        code,
        {},
        sandbox_root,
        cache_dir=sandbox_cache,
        policy=sandbox_policy,
        timeout_s=300,
    )
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    envs = sandbox_cache.parent / "envs" / "python3"
    assert Path(ran.result["deps"]).parent == envs
    assert set(ran.result["outcomes"].values()) == {"Read-only file system"}, ran.result
    assert not (Path(ran.result["deps"]) / "planted.py").exists()


def test_job_cannot_write_outside_its_directory(
    sandbox_policy: RunPolicy, sandbox_root: Path
) -> None:
    """Its directory and its private /tmp are writable; nothing else it sees is: not the
    interpreter, the wrapper, the runtime's cache, the system directories."""
    code = (
        "import os\nimport sys\n\n\n"
        "def main(paths: list):\n"
        "    outcomes = {}\n"
        "    for path in paths:\n"
        "        try:\n"
        "            with open(os.path.join(path, 'planted'), 'w') as f:\n"
        "                f.write('x')\n"
        "            outcomes[path] = 'written'\n"
        "        except OSError as exc:\n"
        "            outcomes[path] = exc.strerror\n"
        "    return outcomes\n"
    )
    wrapper_dir = os.path.dirname(RUNTIME.wrapper)
    cache = sandbox_root / "cache" / "python3"
    denied = [
        "/",
        "/usr",
        "/etc",
        "/var/tmp",
        sys.base_prefix,
        wrapper_dir,
        str(cache),
        str(sandbox_root),
    ]
    ran = run_job(
        RUNTIME,
        code,
        {"paths": ["/tmp", ".", *denied]},
        sandbox_root,
        policy=sandbox_policy,
    )
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    outcomes = ran.result
    assert outcomes["/tmp"] == "written"
    assert outcomes["."] == "written"
    for path in denied:
        assert outcomes[path] != "written", (path, outcomes)
        assert not os.path.exists(os.path.join(path, "planted")), path


def test_run_step_has_the_memory_limit(sandbox_policy: RunPolicy, sandbox_root: Path) -> None:
    code = (
        "import resource\n\n\n"
        "def main():\n"
        "    return list(resource.getrlimit(resource.RLIMIT_AS))\n"
    )
    ran = run_job(RUNTIME, code, {}, sandbox_root, policy=sandbox_policy)
    assert ran.outcome.success, f"{ran.outcome.result_json}\nlogs:\n{ran.logs}"
    limit = MEMORY_LIMIT_MB * 1024 * 1024
    assert ran.result == [limit, limit]
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != limit  # the worker's is not touched
