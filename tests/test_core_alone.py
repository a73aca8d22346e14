"""The core installs, runs and passes its own tests with no plugin installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_core_without_any_plugin(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the core-only environment (pip install uv)"
    venv = tmp_path / "core-only"
    env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    env.pop("GRISTMILL_DATA_DIR", None)
    interpreter = os.path.realpath(sys.executable)
    subprocess.run([uv, "venv", "-q", "-p", interpreter, str(venv)], check=True, env=env)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "-q",
            str(ROOT / "core"),
            "pytest",
            "pytest-asyncio",
            "pytest-timeout",
            # The root pyproject's pytest options spread the tests over workers (-n 2).
            "pytest-xdist",
            "httpx",
        ],
        check=True,
        env=env,
    )
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [
            python,
            "-c",
            "import importlib.metadata as m; print(sorted(d.metadata['Name'] for d in m.distributions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "gristmill" in installed and "gristmill-python" not in installed
    listing = subprocess.run(
        [venv / "bin" / "gristmill", "plugins"], capture_output=True, text=True, env=env
    )
    assert listing.returncode == 0, listing.stderr
    assert "No plugins installed" in listing.stdout
    tests = subprocess.run(
        [
            python,
            "-m",
            "pytest",
            "tests/unit",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not bundled_plugins",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout
