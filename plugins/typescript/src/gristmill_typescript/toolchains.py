"""Finding the ``bun`` and ``deno`` executables and asking them their version."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from gristmill import Toolchain

__all__ = ["Executable", "find_executable", "probe_version"]


@dataclass(frozen=True)
class Executable:
    """Where a tool is, or why it is not usable (``path`` is None then)."""

    path: str | None
    problem: str = ""
    #: How to install the tool (or point to it), added to any failure to run it.
    fix: str = ""


def find_executable(
    name: str,
    env_var: str,
    install_hint: str,
    fallbacks: tuple[Callable[[], str | None], ...] = (),
    packaged: tuple[Callable[[], str | None], ...] = (),
) -> Executable:
    """The absolute path of ``name``: from ``env_var``, else the ``packaged`` finders, else
    ``PATH``, else the fallbacks.

    ``packaged`` finds a binary installed with this plugin's extras, preferred to ``PATH``
    when what ``PATH`` would give is that package's own launcher (a Python script that
    execs the binary: one interpreter start per job). A variable that is set but wrong is
    reported as such rather than silently replaced by another copy of the tool: the
    operator asked for that one.
    """
    fix = f"{install_hint}, or set {env_var} to its path"
    configured = os.environ.get(env_var, "").strip()
    if configured:
        path = os.path.abspath(os.path.expanduser(configured))
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return Executable(path, fix=fix)
        return Executable(
            None,
            f"{env_var}={configured} is not an executable file: point {env_var} to the "
            f"`{name}` binary, or unset it",
        )
    for finder in packaged:
        path = finder()
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return Executable(os.path.abspath(path), fix=fix)
    found = shutil.which(name)
    if found:
        return Executable(os.path.abspath(found), fix=fix)
    for fallback in fallbacks:
        path = fallback()
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return Executable(os.path.abspath(path), fix=fix)
    return Executable(None, f"`{name}` was not found on PATH: {fix}", fix=fix)


def probe_version(executable: Executable, parse: Callable[[str], str]) -> Toolchain:
    """Run ``<tool> --version``: the tool is available when that works."""
    if executable.path is None:
        return Toolchain(False, message=executable.problem)
    try:
        done = subprocess.run(
            [executable.path, "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            # The tool's own environment is not the jobs' one; no update checks or colors.
            env={**os.environ, "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Toolchain(
            False, message=f"cannot run {executable.path} --version: {exc}{_then(executable)}"
        )
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()
        return Toolchain(
            False,
            message=f"{executable.path} --version failed ({done.returncode}): {output}"
            f"{_then(executable)}",
        )
    return Toolchain(True, version=parse(done.stdout.strip()))


def _then(executable: Executable) -> str:
    return f"; {executable.fix}" if executable.fix else ""
