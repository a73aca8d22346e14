"""Locking and installing a script's PyPI dependencies with uv.

The lock is Windmill's: ``# py: 3.11`` (the interpreter's version) followed by the pinned
requirements, one per line. ``uv pip compile`` resolves it against the job interpreter, and
``uv pip install --no-deps --target`` installs exactly those pins into a directory that the
core keeps per lock and shares between jobs. Installs hard-link files from uv's cache (both
live under the worker's cache directory, on one filesystem), so a new environment of
already-downloaded packages costs little disk and time. In the sandbox the cache and the
target are two mounts, which hard links cannot cross: uv copies instead (see "In the
sandbox" in docs/dependencies.md for why the cost is accepted).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from gristmill import JobContext, JobErrorName, Mount, Recipe, ScriptError

__all__ = [
    "INSTALL_FILE",
    "LOCK_INPUT",
    "LOCK_OUTPUT",
    "install_recipe",
    "locate_uv",
    "lock_python_version",
    "lock_recipe",
    "read_lock_file",
    "uv_env",
]

LOCK_INPUT: Final = "requirements.in"
LOCK_OUTPUT: Final = "requirements.txt"
# Written into the job directory, never into the install target: the target must hold only
# the installed packages.
INSTALL_FILE: Final = "requirements.lock.txt"

# The worker's settings uv reads itself, passed on unchanged (the recipe's environment is
# complete: nothing else of the worker's reaches uv).
_PASSED_THROUGH: Final = (
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_STRATEGY",
    "UV_KEYRING_PROVIDER",
    "UV_INSECURE_HOST",
    "UV_NATIVE_TLS",
    "UV_HTTP_TIMEOUT",
    "UV_HTTP_RETRIES",
    "UV_CONCURRENT_DOWNLOADS",
    "UV_OFFLINE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TMPDIR",
)
# Windmill's (pip's) names for the index settings -> uv's. Given to uv in its environment
# rather than as --index-url: an index URL may hold credentials, and a command line is
# readable by every user of the machine.
_PIP_SETTINGS: Final = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST": "UV_INSECURE_HOST",
}

_LOCK_VERSION: Final = re.compile(r"#\s*py:\s*(\d+\.\d+)\s*$")


def locate_uv() -> str:
    """The uv binary: UV_PATH, else the one the ``uv`` package installed next to Gristmill,
    else ``uv`` on PATH. Without any, ``"uv"``: the step then fails saying it cannot start
    uv, which names what to install."""
    configured = os.environ.get("UV_PATH")
    if configured:
        return configured
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv") or "uv"


def uv_env(ctx: JobContext, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The complete environment of a uv step: PATH, HOME (the job directory), the index,
    proxy and certificate settings of the worker and, winning over them, of the job's own
    environment (a ``job_env`` hook may choose an index per job), and what keeps uv to this
    job's settings. Nothing else of either reaches uv (the job's token, say)."""
    environ = os.environ if environ is None else environ
    env = {
        "PATH": ctx.env.get("PATH") or environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(ctx.job_dir),
        "LANG": "C.UTF-8",
        # The interpreter is given by path: never download another one.
        "UV_PYTHON_DOWNLOADS": "never",
        # No uv.toml or pyproject.toml of the job's parent directories, no user config.
        "UV_NO_CONFIG": "1",
        "UV_NO_PROGRESS": "1",
    }
    env.update(_settings(environ))
    env.update(_settings(ctx.env))
    return env


def _settings(source: Mapping[str, str]) -> dict[str, str]:
    settings = {uv: source[pip] for pip, uv in _PIP_SETTINGS.items() if source.get(pip)}
    # uv's own name wins over pip's when both are set.
    settings.update({k: source[k] for k in _PASSED_THROUGH if source.get(k)})
    return settings


def _uv_cache(ctx: JobContext) -> Path:
    return (ctx.cache_dir or ctx.job_dir) / "uv"


def _cache_mounts(ctx: JobContext) -> list[Mount]:
    """uv's cache, writable: the lock and install steps fill it (it must exist to be
    mounted). Inside the job directory (no runtime cache) it needs no mount of its own."""
    cache = _uv_cache(ctx)
    cache.mkdir(parents=True, exist_ok=True)
    if cache.is_relative_to(ctx.job_dir):
        return []
    return [Mount(str(cache), writable=True)]


def lock_recipe(
    ctx: JobContext, inputs: str, *, uv: str, python: str, toolchain: Sequence[Mount] = ()
) -> Recipe:
    """Write ``requirements.in`` into the job directory; the recipe resolves it into
    ``requirements.txt``.

    The step sees ``toolchain`` (uv and the interpreter, read-only), uv's cache (writable)
    and the network (the index), which it keeps even where the worker's jobs have none.
    Resolving may build a source distribution to read its metadata: that runs the
    package's code, in this sandbox."""
    (ctx.job_dir / LOCK_INPUT).write_text(inputs, encoding="utf-8")
    argv = [
        uv,
        "pip",
        "compile",
        "--quiet",
        "--no-header",
        "--no-annotate",
        "--strip-extras",
        LOCK_INPUT,
        "--output-file",
        LOCK_OUTPUT,
        "--python",
        python,
        "--cache-dir",
        str(_uv_cache(ctx)),
    ]
    return Recipe(
        argv,
        uv_env(ctx),
        ctx.job_dir,
        phase="lock",
        failure_name=JobErrorName.LOCK,
        mounts=[*toolchain, *_cache_mounts(ctx)],
        network=True,
    )


def read_lock_file(ctx: JobContext, python_version: str) -> str:
    """The lock to store: ``# py: X.Y`` and the resolver's pins without comments.

    ``""`` when nothing is to be installed (every requirement's marker excludes this
    Python or platform), so that the job runs without an environment."""
    text = (ctx.job_dir / LOCK_OUTPUT).read_text(encoding="utf-8")
    pins = [line.strip() for line in text.splitlines()]
    pins = [line for line in pins if line and not line.startswith("#")]
    if not pins:
        return ""
    return f"# py: {python_version}\n" + "".join(pin + "\n" for pin in pins)


def lock_python_version(lock: str) -> str | None:
    """The ``X.Y`` of a lock's ``# py:`` line; ``None`` for a lock without one."""
    for line in lock.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        match = _LOCK_VERSION.match(stripped)
        if match is not None:
            return match.group(1)
        if not stripped.startswith("#"):
            return None  # the header comes before the first pin
    return None


def install_recipe(
    ctx: JobContext,
    lock: str,
    target: Path,
    *,
    uv: str,
    python: str,
    python_version: str,
    toolchain: Sequence[Mount] = (),
) -> Recipe:
    """The recipe that installs exactly ``lock`` into ``target``.

    The step sees what the lock step sees, and ``target``, writable.

    Raises :class:`ScriptError` when the lock was made for another Python: its pins (and
    their wheels) may not exist for this interpreter.
    """
    wanted = lock_python_version(lock)
    if wanted is not None and wanted != python_version:
        raise ScriptError(
            f"the script's lock was resolved for Python {wanted} but this worker runs "
            f"Python {python_version} ({python}): lock the script again (save it) on a "
            f"worker with Python {python_version}, or run it where Python {wanted} is"
        )
    requirements = ctx.job_dir / INSTALL_FILE
    requirements.write_text(lock, encoding="utf-8")
    argv = [
        uv,
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(target),
        "--requirements",
        str(requirements),
        "--python",
        python,
        "--cache-dir",
        str(_uv_cache(ctx)),
        "--link-mode",
        "hardlink",
        # Every job imports from this directory and none may write into it (jobs start
        # with -B): compiled once here, or each job would compile its imports again.
        "--compile-bytecode",
    ]
    return Recipe(
        argv,
        uv_env(ctx),
        ctx.job_dir,
        phase="install",
        failure_name=JobErrorName.INSTALL,
        mounts=[*toolchain, *_cache_mounts(ctx), Mount(str(target), writable=True)],
        network=True,
    )
