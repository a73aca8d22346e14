"""The Python 3 runtime: parse ``main``, run it through the wrapper, read its result."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from importlib import resources
from typing import Any

from gristmill import (
    JobContext,
    JobOutcome,
    ProcessExit,
    Recipe,
    Signature,
    Toolchain,
    read_result_file,
)

from gristmill_python.signature import parse_signature

__all__ = ["PythonRuntime"]

TEMPLATE = """\
# `main`'s parameters become the script's form and its API arguments.
def main(name: str = "world", times: int = 1) -> str:
    greeting = f"Hello, {name}!"
    for _ in range(times):
        print(greeting)
    return greeting
"""

# -I: isolated (no user site, no PYTHON* variables, no script directory on sys.path);
# -S: no site-packages (a job sees the standard library and its own dependencies, and starts
#     twice as fast without the interpreter's .pth files); -B: no .pyc files in the job
#     directory; -u: unbuffered, so logs stream while the job runs; -X utf8: UTF-8 I/O.
INTERPRETER_FLAGS = ("-I", "-S", "-B", "-u", "-X", "utf8")


def _default_interpreter() -> str:
    # The resolved binary, never a launcher shim: a pyenv shim costs ~80 ms per start.
    return os.path.realpath(sys.executable)


class PythonRuntime:
    name = "python3"
    display_name = "Python"
    aliases = ("python", "py")
    file_extensions = (".py",)

    def __init__(self, interpreter: str | None = None) -> None:
        self.interpreter = interpreter or os.environ.get("PYTHON_PATH") or _default_interpreter()
        self.wrapper = str(resources.files("gristmill_python").joinpath("wrapper.py"))

    def parse_signature(self, source: str) -> Signature:
        return parse_signature(source)

    def template(self) -> str:
        return TEMPLATE

    @functools.cache  # noqa: B019 - one runtime object per process
    def toolchain(self) -> Toolchain:
        try:
            done = subprocess.run(
                [self.interpreter, "-I", "-S", "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Toolchain(
                False,
                message=f"cannot run the Python interpreter {self.interpreter!r} ({exc}); "
                "install Python 3 or set PYTHON_PATH to an interpreter",
            )
        if done.returncode != 0:
            return Toolchain(False, message=f"{self.interpreter} failed: {done.stderr.strip()}")
        return Toolchain(True, version=done.stdout.strip())

    def prepare(self, ctx: JobContext) -> Recipe:
        (ctx.job_dir / "main.py").write_text(ctx.code, encoding="utf-8")
        argv = [self.interpreter, *INTERPRETER_FLAGS, self.wrapper]
        spec = argument_spec(ctx.schema)
        if spec:
            argv.append(json.dumps(spec, separators=(",", ":")))
        return Recipe(argv=argv, env=dict(ctx.env), cwd=ctx.job_dir)

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)


def argument_spec(schema: Any) -> dict[str, list[Any]]:
    """What the wrapper must do to each argument: ``[conversion, drop_null]``.

    Conversions turn JSON strings into ``bytes``, ``datetime`` or ``date``; ``drop_null``
    removes a null argument so that the parameter's own (non-null) default applies, as the
    form sends null for a field left empty.
    """
    spec: dict[str, list[Any]] = {}
    for name, prop in ((schema or {}).get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        conversion = None
        if prop.get("contentEncoding") == "base64":
            conversion = "bytes"
        elif prop.get("format") == "date-time":
            conversion = "datetime"
        elif prop.get("format") == "date":
            conversion = "date"
        drop_null = prop.get("default") is not None
        if conversion or drop_null:
            spec[name] = [conversion, drop_null]
    return spec
