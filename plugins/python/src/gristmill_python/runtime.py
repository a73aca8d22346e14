"""The Python 3 runtime: parse ``main``, run it through the wrapper, read its result."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from gristmill import (
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    ScriptError,
    Signature,
    Toolchain,
    WarmSpec,
    read_result_file,
    toolchain_mounts,
)

from gristmill_python import dependencies
from gristmill_python.requirements import lock_inputs
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

#: The address space of each process of a run step (RLIMIT_AS), as in Windmill.
MEMORY_LIMIT_MB = 4096

#: Standard modules a warm parent imports for every environment: what the wrapper itself
#: uses on every run, and what scripts import most (paid once per parent, not per job).
WARM_PRELOAD = ("json", "traceback", "datetime", "base64", "asyncio")

# Prints what the toolchain report and the sandbox's mounts need to know of an interpreter:
# its version and its installation prefix (where its standard library is, whatever the path
# of the binary: a link, a virtual environment's python).
_PROBE = "import sys; print(sys.version.split()[0]); print(sys.base_prefix)"


def _default_interpreter() -> str:
    # The resolved binary, never a launcher shim: a pyenv shim costs ~80 ms per start.
    return os.path.realpath(sys.executable)


class PythonRuntime:
    name = "python3"
    display_name = "Python"
    aliases = ("python", "py")
    file_extensions = (".py",)

    def __init__(self, interpreter: str | None = None, uv: str | None = None) -> None:
        """``interpreter``: the jobs' Python (default: PYTHON_PATH, else this process's).
        ``uv``: the resolver and installer of dependencies (default: UV_PATH, else the
        ``uv`` package's binary, else ``uv`` on PATH)."""
        self.interpreter = interpreter or os.environ.get("PYTHON_PATH") or _default_interpreter()
        self.wrapper = str(resources.files("gristmill_python").joinpath("wrapper.py"))
        self._uv = uv

    def parse_signature(self, source: str) -> Signature:
        return parse_signature(source)

    def template(self) -> str:
        return TEMPLATE

    @functools.cache  # noqa: B019 - one runtime object per process
    def toolchain(self) -> Toolchain:
        probe = self._probe()
        if isinstance(probe, str):
            return Toolchain(False, message=probe)
        return Toolchain(True, version=probe[0])

    @functools.cache  # noqa: B019 - one runtime object per process
    def _probe(self) -> tuple[str, str] | str:
        """The interpreter's version and installation prefix; or why it cannot run."""
        try:
            done = subprocess.run(
                [self.interpreter, "-I", "-S", "-c", _PROBE],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return (
                f"cannot run the Python interpreter {self.interpreter!r} ({exc}); "
                "install Python 3 or set PYTHON_PATH to an interpreter"
            )
        lines = done.stdout.splitlines()
        if done.returncode != 0 or len(lines) != 2:
            return (
                f"{self.interpreter} failed: {done.stderr.strip() or done.stdout.strip()}; "
                "install Python 3 or set PYTHON_PATH to an interpreter"
            )
        version, prefix = lines
        return version, prefix

    def interpreter_mounts(self, *programs: str) -> list[Mount]:
        """Read-only mounts for a step that runs the interpreter (and ``programs``): their
        directories (and those of what links to them point to) and the interpreter's
        installation prefix, whose standard library it imports."""
        probe = self._probe()
        # Without a probe the step fails anyway, saying what the sandbox lacks (and the
        # toolchain report already keeps jobs away from this worker).
        prefixes = [] if isinstance(probe, str) else [probe[1]]
        mounts = toolchain_mounts(self.interpreter, *programs, prefixes=prefixes)
        # A virtual environment's python finds its prefix through the pyvenv.cfg next to it
        # or one level up (where site would find site-packages, which jobs do not use).
        bin_dir = os.path.dirname(os.path.abspath(self.interpreter))
        for directory in (bin_dir, os.path.dirname(bin_dir)):
            config = os.path.join(directory, "pyvenv.cfg")
            if os.path.isfile(config):
                if not any(config.startswith(m.source.rstrip("/") + "/") for m in mounts):
                    mounts.append(Mount(config))
                break
        return mounts

    @functools.cached_property
    def _run_mounts(self) -> list[Mount]:
        return self.interpreter_mounts(self.wrapper)

    def python_version(self) -> str:
        """The jobs' interpreter as ``major.minor``, the ``# py:`` line of its locks."""
        if self.interpreter == _default_interpreter():
            return f"{sys.version_info.major}.{sys.version_info.minor}"
        toolchain = self.toolchain()
        if not toolchain.available or not toolchain.version:
            raise ScriptError(toolchain.message or f"cannot run {self.interpreter}")
        return ".".join(toolchain.version.split(".")[:2])

    @property
    def uv(self) -> str:
        if self._uv is None:
            self._uv = dependencies.locate_uv()
        return self._uv

    # Dependency locking (gristmill.DependencyLocking); see dependencies.py.

    def lock_inputs(self, source: str) -> str | None:
        return lock_inputs(source)

    def _uv_mounts(self) -> list[Mount]:
        # uv runs the interpreter (to learn its version and platform, and to compile the
        # installed modules): both must be visible. A bare "uv" (none found) is not mounted:
        # the step then fails saying it cannot start uv.
        uv = self.uv
        return self.interpreter_mounts(uv) if os.path.isabs(uv) else self.interpreter_mounts()

    def prepare_lock(self, ctx: JobContext, inputs: str) -> Recipe:
        return dependencies.lock_recipe(
            ctx, inputs, uv=self.uv, python=self.interpreter, toolchain=self._uv_mounts()
        )

    def read_lock(self, ctx: JobContext) -> str:
        return dependencies.read_lock_file(ctx, self.python_version())

    def prepare_install(self, ctx: JobContext, lock: str, target: Path) -> Recipe:
        return dependencies.install_recipe(
            ctx,
            lock,
            target,
            uv=self.uv,
            python=self.interpreter,
            python_version=self.python_version(),
            toolchain=self._uv_mounts(),
        )

    def prepare(self, ctx: JobContext) -> Recipe:
        (ctx.job_dir / "main.py").write_text(ctx.code, encoding="utf-8")
        argv = [self.interpreter, *INTERPRETER_FLAGS, self.wrapper]
        mounts = list(self._run_mounts)
        if ctx.deps_dir is not None:
            # -I ignores PYTHONPATH: the wrapper adds the directory itself. Read-only: every
            # job of the same lock shares it (its modules were compiled at install).
            argv += ["--deps", str(ctx.deps_dir)]
            mounts.append(Mount(str(ctx.deps_dir)))
        spec = argument_spec(ctx.schema)
        if spec:
            argv.append(json.dumps(spec, separators=(",", ":")))
        return Recipe(
            argv=argv,
            env=dict(ctx.env),
            cwd=ctx.job_dir,
            mounts=mounts,
            limits=Limits(memory_mb=MEMORY_LIMIT_MB),
        )

    def collect_result(self, ctx: JobContext, exit: ProcessExit) -> JobOutcome:
        return read_result_file(ctx, exit)

    # Warm mode (gristmill.WarmStart): a parent per environment has imported the wrapper and
    # the environment's packages; each job runs in a child forked from it.

    def warm_spec(self, ctx: JobContext) -> WarmSpec | None:
        mounts = list(self._run_mounts)
        deps = None
        if ctx.deps_dir is not None:
            deps = str(ctx.deps_dir)
            mounts.append(Mount(deps))
        return WarmSpec(
            argv=[self.interpreter, *INTERPRETER_FLAGS],
            env={"PATH": ctx.env.get("PATH", "/usr/bin:/bin")},
            mounts=mounts,
            entry=self.wrapper,
            function="warm_run",
            preload=[*WARM_PRELOAD, *(_top_level_modules(deps) if deps else ())],
            deps_dir=deps,
            limits=Limits(memory_mb=MEMORY_LIMIT_MB),
        )

    def warm_payload(self, ctx: JobContext) -> dict[str, Any]:
        return {"code": ctx.code, "args": dict(ctx.args), "spec": argument_spec(ctx.schema)}


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


@functools.lru_cache(maxsize=256)
def _top_level_modules(deps_dir: str) -> tuple[str, ...]:
    """The importable top-level names an installed dependencies directory provides: what a
    warm parent preloads (so ``import requests`` in a job costs nothing): its packages and
    modules. Cached: an installed directory is content-addressed and never changes."""
    names: set[str] = set()
    try:
        entries = list(os.scandir(deps_dir))
    except OSError:
        return ()
    for entry in entries:
        name = entry.name
        if name.endswith(".dist-info"):
            continue
        if entry.is_dir() and (
            os.path.exists(os.path.join(entry.path, "__init__.py")) or "." not in name
        ):
            module = name
        elif name.endswith(".py"):
            module = name[:-3]
        else:
            continue
        if module.isidentifier() and not module.startswith("_") and module not in _NOT_MODULES:
            names.add(module)
    return tuple(sorted(names))


# Directories an installation leaves beside the packages that are not modules to import.
_NOT_MODULES = frozenset({"bin", "tests", "test", "include", "share", "lib", "scripts"})
