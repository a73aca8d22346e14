"""Building the web UI (``frontend/``) when its ``dist`` is missing or stale.

``gristmill up`` calls :func:`prepare_webui` before it listens: in a checkout, the sources'
digest is compared with the one stamped in ``dist`` at the last build; when they differ,
``npm ci`` (only when ``package-lock.json`` changed) and ``npm run build`` run, their output
shown line by line. A lock file keeps two processes from building at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import gristmill
from gristmill.errors import GristmillError

__all__ = [
    "WebUIError",
    "build_webui",
    "find_frontend",
    "prepare_webui",
    "source_digest",
    "webui_is_current",
]

log = logging.getLogger("gristmill.webui")

#: Written into ``dist`` after a build: the digest of the sources it was built from.
STAMP = ".gristmill-build"
#: Written into ``node_modules`` after ``npm ci``: the digest of the lock file it installed.
DEPS_STAMP = ".gristmill-deps"
#: What the build reads, besides ``src/``; anything else (``dist``, ``node_modules``) is not
#: an input.
_INPUT_FILES = (
    "package.json",
    "package-lock.json",
    "index.html",
    "vite.config.ts",
    "svelte.config.js",
    "tsconfig.json",
)
_INPUT_DIRS = ("src", "vite-plugins", "public")


class WebUIError(GristmillError, RuntimeError):
    """The web UI cannot be built or found; the message says what to do."""


def find_frontend() -> Path | None:
    """The ``frontend/`` directory of the checkout Gristmill runs from, if any."""
    here = Path(gristmill.__file__).resolve()
    for parent in here.parents:
        candidate = parent / "frontend"
        if (candidate / "package.json").is_file():
            return candidate
    return None


def _inputs(frontend: Path) -> Iterator[Path]:
    for name in _INPUT_FILES:
        path = frontend / name
        if path.is_file():
            yield path
    for name in _INPUT_DIRS:
        root = frontend / name
        if root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())


def source_digest(frontend: Path) -> str:
    """A digest of every input of the build (paths and contents)."""
    digest = hashlib.sha256()
    for path in _inputs(frontend):
        digest.update(path.relative_to(frontend).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _lock_digest(frontend: Path) -> str:
    return hashlib.sha256((frontend / "package-lock.json").read_bytes()).hexdigest()


def webui_is_current(frontend: Path) -> bool:
    """Whether ``frontend/dist`` was built from the sources as they are now."""
    stamp = frontend / "dist" / STAMP
    index = frontend / "dist" / "index.html"
    if not stamp.is_file() or not index.is_file():
        return False
    return stamp.read_text().strip() == source_digest(frontend)


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise WebUIError(
            "the web UI must be built (frontend/dist is missing or older than its sources) "
            "and npm is not on PATH: install Node.js 20+ with npm (Debian/Ubuntu: apt-get "
            "install nodejs npm), or start with GRISTMILL_WEBUI=off to serve the API alone"
        )
    return npm


def _run(command: list[str], cwd: Path, echo: Callable[[str], None]) -> None:
    echo(f"$ {' '.join(Path(command[0]).name if i == 0 else c for i, c in enumerate(command))}")
    env = {**os.environ, "CI": "1", "NO_COLOR": "1", "npm_config_fund": "false"}
    env["npm_config_update_notifier"] = "false"
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert process.stdout is not None
    tail: list[str] = []
    for line in process.stdout:
        line = line.rstrip()
        if line:
            echo(line)
            tail = [*tail[-30:], line]
    if process.wait() != 0:
        raise WebUIError(
            f"building the web UI failed: `{' '.join(command[1:])}` in {cwd} exited with "
            f"{process.returncode}; its last lines:\n" + "\n".join(tail)
        )


def build_webui(frontend: Path, echo: Callable[[str], None] | None = None) -> Path:
    """Build ``frontend/dist`` unless it is current; return it. Safe to call concurrently."""
    show = echo or (lambda line: print(f"webui: {line}", file=sys.stderr, flush=True))
    dist = frontend / "dist"
    with open(frontend / ".build.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if webui_is_current(frontend):
            return dist
        digest = source_digest(frontend)
        npm = _npm()
        show(f"building the web UI in {frontend} (sources changed or never built)")
        deps_stamp = frontend / "node_modules" / DEPS_STAMP
        lock_digest = _lock_digest(frontend)
        if not deps_stamp.is_file() or deps_stamp.read_text().strip() != lock_digest:
            _run([npm, "ci", "--no-audit"], frontend, show)
            deps_stamp.write_text(lock_digest)
        _run([npm, "run", "build"], frontend, show)
        (dist / STAMP).write_text(digest)
        show("web UI built")
        return dist


def prepare_webui(setting: str) -> Path | None:
    """The directory of the built UI to serve for ``GRISTMILL_WEBUI=setting``, or ``None``.

    ``off``: none. A directory: that one (it must hold ``index.html``). ``auto``: the
    checkout's ``frontend/dist``, built first when stale; none when Gristmill does not run
    from a checkout (a wheel install carries no frontend sources).
    """
    if setting == "off":
        return None
    if setting != "auto":
        dist = Path(setting).expanduser()
        if not (dist / "index.html").is_file():
            raise WebUIError(
                f"GRISTMILL_WEBUI={setting}: no index.html there; point it at a built UI "
                "(frontend/dist after `npm run build`), or use auto or off"
            )
        return dist.resolve()
    frontend = find_frontend()
    if frontend is None:
        log.warning("no frontend/ sources next to this install: serving the API without a UI")
        return None
    return build_webui(frontend)
