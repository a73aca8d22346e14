"""Fixtures shared by the integration and end-to-end tests: Bun and the pinned windmill-cli,
installed once per test session (an npm install costs seconds; each test gets its own home)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gristmill.testing.windmill_cli import WindmillCli, install_windmill_cli


@pytest.fixture(scope="session")
def bun() -> str:
    """The Bun the TypeScript plugin would run (the test is skipped without one)."""
    from gristmill_typescript.bun import find_bun

    found = find_bun()
    if found.path is None:
        pytest.skip(f"no Bun: {found.problem} {found.fix}")
    return found.path


@pytest.fixture(scope="session")
def windmill_cli_package(bun: str) -> Iterator[Path]:
    """The pinned windmill-cli installed once for the session: its ``wmill`` entry point."""
    root = Path(tempfile.mkdtemp(prefix="gm-windmill-cli-"))
    try:
        yield install_windmill_cli(bun, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def windmill_cli(bun: str, windmill_cli_package: Path, tmp_path: Path) -> WindmillCli:
    """``wmill`` for one test: a home of its own and a working folder under ``tmp_path``."""
    return WindmillCli(bun, windmill_cli_package, tmp_path / "home", tmp_path / "work")


@pytest.fixture
def new_windmill_cli(
    bun: str, windmill_cli_package: Path, tmp_path: Path
) -> Callable[[str], WindmillCli]:
    """More than one ``wmill`` in a test (two homes, two folders), each named."""

    def make(name: str) -> WindmillCli:
        return WindmillCli(bun, windmill_cli_package, tmp_path / name / "home", tmp_path / name)

    return make
