"""`gristmill install` for real: a plugin installed from a local path into Gristmill's own
environment is offered by the next `gristmill up`, runs a job, and is gone once uninstalled.

The environment is a throwaway venv holding the core alone (built from core/ with uv, the
packages coming from uv's cache), so nothing of the development environment's plugins is in
it: the Perl runtime there comes only from `gristmill install`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Api, GristmillProcess, Launcher, clean_env, free_port, login

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PERL_PLUGIN = ROOT / "tests" / "fixtures" / "gristmill-perl"

GREET = """\
# param name: str
sub main {
    my ($name) = @_;
    print "greeting $name\\n";
    return { greeting => "Hello, $name!" };
}
"""

BROKEN_PYPROJECT = """\
[project]
name = "gristmill-broken"
version = "0.1.0"

[project.entry-points.gristmill]
broken = "gristmill_broken"

[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"
"""


class Venv:
    """A venv with the core installed, and its `gristmill` command."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.gristmill = path / "bin" / "gristmill"

    def env(self, **overrides: str) -> dict[str, str]:
        env = clean_env(GRISTMILL_EXAMPLE_PERL="1", GRISTMILL_WEBUI="off", **overrides)
        env.pop("VIRTUAL_ENV", None)  # the test's own environment, not this one
        return env

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.gristmill), *args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def plugins(self, **env: str) -> dict:
        done = self.run("plugins", "--json", env=self.env(**env))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the throwaway environment (pip install uv)"
    path = tmp_path_factory.mktemp("plugin-install") / "venv"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run(
        [uv, "venv", "-q", "-p", os.path.realpath(sys.executable), str(path)], check=True, env=env
    )
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(path / "bin" / "python"), str(ROOT / "core")],
        check=True,
        env=env,
    )
    return Venv(path)


@pytest.fixture
def broken_plugin(tmp_path: Path) -> Path:
    """A plugin project whose module raises at import."""
    project = tmp_path / "gristmill-broken"
    (project / "gristmill_broken").mkdir(parents=True)
    (project / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (project / "gristmill_broken" / "__init__.py").write_text(
        'raise RuntimeError("half-written plugin")\n'
    )
    return project


@pytest.fixture
def launch() -> Iterator[Launcher]:
    launcher = Launcher()
    try:
        yield launcher
    finally:
        launcher.close()


def _up(launcher: Launcher, venv: Venv, data_dir: Path, **env: str) -> GristmillProcess:
    port = free_port()
    variables = venv.env(GRISTMILL_DATA_DIR=str(data_dir), PORT=str(port), NUM_WORKERS="1", **env)
    process = GristmillProcess([str(venv.gristmill), "up"], variables, data_dir, port)
    launcher.processes.append(process)
    process.wait_ready(60)
    return process


@pytest.mark.timeout(180)
def test_install_offer_run_and_uninstall_a_runtime(
    venv: Venv, broken_plugin: Path, launch: Launcher
) -> None:
    # One command: the runtime from its local path, and a plugin under development (editable)
    # that does not import yet.
    done = venv.run("install", str(PERL_PLUGIN), "-e", str(broken_plugin))
    assert done.returncode == 0, done.stderr
    assert "plugin perl (gristmill-perl 0.1.0) installed" in done.stdout
    assert "plugin broken (gristmill-broken 0.1.0) installed" in done.stdout
    assert f"--python {venv.path}/bin/python" in done.stderr  # into its own environment

    # The listing survives the broken plugin and says how to recover.
    listed = venv.plugins()
    assert [p["name"] for p in listed["plugins"]] == ["perl"]
    assert listed["plugins"][0]["runtimes"] == ["perl"]
    assert listed["broken"][0]["error"] == "RuntimeError: half-written plugin"
    assert "GRISTMILL_DISABLE_PLUGINS=broken" in listed["broken"][0]["remedy"]

    # With the setting, `gristmill up` starts and offers Perl with no other step.
    data_dir = launch.data_dir()
    platform = _up(launch, venv, data_dir, GRISTMILL_DISABLE_PLUGINS="broken")
    assert platform.admin_email and platform.admin_password
    admin = (platform.admin_email, platform.admin_password)
    api = Api(platform.local_url, login(platform.local_url, *admin))
    try:
        runtimes = api.client.get("/runtimes").json()
        perl = next(r for r in runtimes if r["name"] == "perl")
        assert perl["plugin"] == "gristmill-perl 0.1.0" and perl["available"] is True
        path = api.create_script(GREET, language="perl")
        r = api.client.post(f"{api.w}/jobs/run_wait_result/p/{path}", json={"name": "Ada"})
        assert r.status_code == 200, r.text
        assert r.json() == {"greeting": "Hello, Ada!"}
    finally:
        api.close()
    platform.terminate()

    # Editable: the fixed source loads at the next start, without installing again.
    (broken_plugin / "gristmill_broken" / "__init__.py").write_text("")
    listed = venv.plugins()
    assert listed["broken"] == [] and "broken" in [p["name"] for p in listed["plugins"]]

    # Uninstalling works beside a broken plugin (broken again), and what starts next no
    # longer offers Perl (the listing loads plugins as `gristmill up` does; the start above
    # showed that they are read at start).
    (broken_plugin / "gristmill_broken" / "__init__.py").write_text("raise SyntaxError\n")
    done = venv.run("uninstall", "--yes", "gristmill-perl", "gristmill-broken")
    assert done.returncode == 0, done.stderr
    assert "- gristmill-perl==0.1.0" in done.stderr and "- gristmill-broken==0.1.0" in done.stderr
    assert venv.plugins() == {"plugins": [], "runtimes": [], "broken": []}


def test_without_uv_or_pip_install_says_what_to_do(venv: Venv) -> None:
    """A venv made by uv has no pip: with no uv to be found either, the command says so."""
    done = venv.run("install", "gristmill-anything", env=venv.env(PATH="/usr/bin:/bin"))
    assert done.returncode == 1
    assert "neither uv nor pip can install into Gristmill's environment" in done.stderr
    assert "-m ensurepip" in done.stderr


def test_with_pip_and_no_uv_pip_installs_and_uninstalls(venv: Venv, tmp_path: Path) -> None:
    """An environment with pip and no uv to be found (as `python -m venv` makes): pip does
    the work, into the same environment. The plugin is a wheel, so pip needs no index."""
    uv = shutil.which("uv")
    assert uv
    project = tmp_path / "gristmill-quiet"
    (project / "gristmill_quiet").mkdir(parents=True)
    (project / "gristmill_quiet" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text(
        BROKEN_PYPROJECT.replace("gristmill-broken", "gristmill-quiet")
        .replace("broken = ", "quiet = ")
        .replace('"gristmill_broken"', '"gristmill_quiet"')
    )
    subprocess.run(
        [uv, "build", "-q", "--wheel", "--out-dir", str(tmp_path)], cwd=project, check=True
    )
    python = str(venv.path / "bin" / "python")
    subprocess.run([uv, "pip", "install", "-q", "--python", python, "pip"], check=True)
    no_uv = venv.env(PATH="/usr/bin:/bin")
    try:
        (built,) = tmp_path.glob("gristmill_quiet-0.1.0-*.whl")
        wheel = str(built)
        done = venv.run("install", wheel, env=no_uv)
        assert done.returncode == 0, done.stderr
        assert f"pip: {python} -m pip install {wheel}" in done.stderr
        assert "plugin quiet (gristmill-quiet 0.1.0) installed" in done.stdout
        done = venv.run("uninstall", "-y", "gristmill-quiet", env=no_uv)
        assert done.returncode == 0, done.stderr
        assert f"pip: {python} -m pip uninstall --yes gristmill-quiet" in done.stderr
    finally:
        subprocess.run([uv, "pip", "uninstall", "-q", "--python", python, "pip"], check=True)
