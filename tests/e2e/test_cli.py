"""The `gristmill` command without a running platform: help texts and `plugins`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import GRISTMILL, clean_env

pytestmark = pytest.mark.slow


def _gristmill(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(GRISTMILL), *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(60)
def test_plugins_lists_python_runtime_and_distribution() -> None:
    done = _gristmill("plugins")
    assert done.returncode == 0, done.stderr
    assert "gristmill-python" in done.stdout
    runtimes = done.stdout.split("Runtimes:", 1)[1]
    assert "python3" in runtimes
    assert "ready" in runtimes


@pytest.mark.timeout(60)
def test_plugins_json_is_valid() -> None:
    done = _gristmill("plugins", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    plugins = {p["distribution"]: p for p in data["plugins"]}
    assert "gristmill-python" in plugins, data
    assert "register_runtimes" in plugins["gristmill-python"]["hooks"]
    runtimes = {r["name"]: r for r in data["runtimes"]}
    assert runtimes["python3"]["available"] is True
    assert "gristmill-python" in runtimes["python3"]["plugin"]


@pytest.mark.timeout(60)
def test_plugins_with_none_loaded_says_so() -> None:
    done = _gristmill("plugins", GRISTMILL_LOAD_PLUGINS="")
    assert done.returncode == 0, done.stderr
    assert "gristmill-python" in done.stdout  # the hint says what to install
    assert "No plugins installed" in done.stdout


@pytest.mark.timeout(60)
def test_top_level_help() -> None:
    done = _gristmill("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: gristmill")
    for command in ("up", "server", "worker", "run", "plugins"):
        assert f"  {command} " in done.stdout, done.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["up", "server", "worker", "run", "plugins"])
def test_subcommand_help(command: str) -> None:
    done = _gristmill(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: gristmill {command}"), done.stdout
    short = _gristmill(command, "-h")
    assert short.returncode == 0
    assert short.stdout == done.stdout


@pytest.mark.timeout(60)
def test_version() -> None:
    done = _gristmill("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("gristmill, version ")


@pytest.mark.timeout(60)
def test_bad_setting_is_a_usage_error() -> None:
    done = _gristmill("up", NUM_WORKERS="lots", GRISTMILL_DATA_DIR="/nonexistent/never")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "NUM_WORKERS" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_openapi_prints_the_document_the_ui_client_is_generated_from() -> None:
    done = _gristmill("openapi")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert "/api/scripts/parse_schema" in document["paths"]
    assert document["openapi"].startswith("3.")


@pytest.mark.timeout(60)
def test_up_with_an_unusable_ui_directory_stops_with_the_reason(tmp_path: Path) -> None:
    done = _gristmill(
        "up",
        "--port",
        "0",
        GRISTMILL_WEBUI=str(tmp_path),
        GRISTMILL_DATA_DIR=str(tmp_path / "data"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"GRISTMILL_WEBUI={tmp_path}: no index.html there" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "postgres").exists()  # stopped before the database
