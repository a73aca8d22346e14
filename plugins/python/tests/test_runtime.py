"""PythonRuntime's identity, template, toolchain report and entry point."""

from __future__ import annotations

import importlib
import os
import sys
from importlib import metadata
from pathlib import Path

import pytest
from gristmill.runtimes import Runtime, ScriptError
from gristmill.runtimes.signature import INT, STR
from gristmill_python.runtime import PythonRuntime


def test_identity() -> None:
    """Windmill's language name python3, with the aliases and extension users type."""
    runtime = PythonRuntime()
    assert runtime.name == "python3"
    assert runtime.display_name == "Python"
    assert runtime.aliases == ("python", "py")
    assert runtime.file_extensions == (".py",)
    assert isinstance(runtime, Runtime)


def test_template_parses_with_documented_params() -> None:
    """The starter script parses; its main takes name: str = "world" and times: int = 1."""
    runtime = PythonRuntime()
    sig = runtime.parse_signature(runtime.template())
    assert [(a.name, a.typ, a.default, a.has_default) for a in sig.args] == [
        ("name", STR, "world", True),
        ("times", INT, 1, True),
    ]
    compile(runtime.template(), "template.py", "exec")


def test_parse_signature_rejects_bad_source() -> None:
    """parse_signature raises ScriptError with a position for invalid Python."""
    with pytest.raises(ScriptError) as info:
        PythonRuntime().parse_signature("def main(:\n    pass\n")
    assert info.value.line == 1


def test_toolchain_available() -> None:
    """The default interpreter is available and reports its version."""
    toolchain = PythonRuntime().toolchain()
    assert toolchain.available is True
    expected = ".".join(str(part) for part in sys.version_info[:2])
    assert toolchain.version is not None
    assert toolchain.version.startswith(expected)
    assert toolchain.message == ""


def test_default_interpreter_is_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PYTHON_PATH the interpreter is the real binary behind sys.executable."""
    monkeypatch.delenv("PYTHON_PATH", raising=False)
    runtime = PythonRuntime()
    assert runtime.interpreter == os.path.realpath(sys.executable)
    assert Path(runtime.wrapper).name == "wrapper.py"
    assert Path(runtime.wrapper).is_file()


def test_python_path_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PYTHON_PATH chooses the interpreter; an explicit one wins over it."""
    monkeypatch.setenv("PYTHON_PATH", "/opt/py/bin/python3")
    assert PythonRuntime().interpreter == "/opt/py/bin/python3"
    assert PythonRuntime(interpreter="/x/python").interpreter == "/x/python"


def test_toolchain_unavailable_names_path_and_variable() -> None:
    """A missing interpreter is unavailable, with a message naming it and PYTHON_PATH."""
    toolchain = PythonRuntime(interpreter="/nonexistent/python").toolchain()
    assert toolchain.available is False
    assert toolchain.version is None
    assert "/nonexistent/python" in toolchain.message
    assert "PYTHON_PATH" in toolchain.message


def test_toolchain_failing_interpreter(tmp_path: Path) -> None:
    """An interpreter that runs but fails is unavailable and its error is shown."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no python here' >&2\nexit 3\n")
    fake.chmod(0o755)
    toolchain = PythonRuntime(interpreter=str(fake)).toolchain()
    assert toolchain.available is False
    assert str(fake) in toolchain.message
    assert "no python here" in toolchain.message


def test_entry_point_resolves_to_plugin_module() -> None:
    """The ``gristmill`` entry point ``python3`` names gristmill_python.plugin."""
    points = [ep for ep in metadata.entry_points(group="gristmill") if ep.name == "python3"]
    assert len(points) == 1
    point = points[0]
    assert point.value == "gristmill_python.plugin"
    assert point.dist is not None and point.dist.name == "gristmill-python"
    module = point.load()
    assert module is importlib.import_module("gristmill_python.plugin")
    assert hasattr(module, "register_runtimes")


def test_plugin_registers_one_python_runtime() -> None:
    """The plugin's hook registers exactly one PythonRuntime."""
    from gristmill_python import plugin

    registered: list[object] = []
    plugin.register_runtimes(register=registered.append)
    assert len(registered) == 1
    assert isinstance(registered[0], PythonRuntime)
