"""The interface between the executor and a sandbox backend.

A backend turns a validated :class:`~gristmill.runtimes.Recipe` into the process the executor
starts (:class:`Launch`: argv, environment, directory, descriptors to pass), reads that
process's exit status back in the executor's terms, and explains failures that are the
sandbox's own ("not visible inside the sandbox") in words a runtime author can act on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gristmill.config import ConfigError
from gristmill.errors import GristmillError
from gristmill.sandbox.spec import Limits, Mount, is_under

if TYPE_CHECKING:
    from gristmill.runtimes import Recipe

__all__ = [
    "Backend",
    "Launch",
    "Protected",
    "SandboxError",
    "SandboxUnavailable",
    "present_mounts",
]


class SandboxError(GristmillError, RuntimeError):
    """A step the sandbox cannot start as asked (a mount that does not exist, a program
    outside every mount...): the job fails with this message."""


class SandboxUnavailable(ConfigError):
    """The chosen backend cannot run on this machine: the worker does not start."""


@dataclass(frozen=True)
class Protected:
    """Host directories no step may see into: ``roots`` (the data directory, the jobs
    directory) except what lies under ``shared`` (the caches, which runtimes mount) and the
    step's own job directory."""

    roots: Sequence[str] = ()
    shared: Sequence[str] = ()
    jobs_dir: str | None = None

    def check(self, source: str, phase: str, cwd: str) -> None:
        """Raise :class:`SandboxError` when mounting ``source`` would expose a protected
        directory: one that holds a root, or lies inside one (not shared, not the step's
        own job directory). A mount path can come from a script (a Go ``//replace``)."""
        for root in self.roots:
            if is_under(root, source):
                raise SandboxError(
                    f"the {phase} step mounts {source}, which holds {root} (other jobs' "
                    "directories, the database, the CLI token): mount the directories the "
                    "step needs, not their parent"
                )
        inside = [root for root in self.roots if is_under(source, root)]
        if not inside or any(is_under(source, shared) for shared in self.shared):
            return
        if self.jobs_dir is not None and is_under(cwd, self.jobs_dir) and cwd != self.jobs_dir:
            own = (
                self.jobs_dir.rstrip("/") + "/" + cwd[len(self.jobs_dir) :].strip("/").split("/")[0]
            )
            if is_under(source, own):
                return
        raise SandboxError(
            f"the {phase} step mounts {source}, inside {inside[0]}: of the platform's own "
            f"directories a step may see only the caches ({', '.join(self.shared) or 'none'}) "
            "and its own job directory"
        )


def present_mounts(recipe: Recipe, protected: Protected) -> list[Mount]:
    """The mounts of ``recipe`` that exist on this worker, after checking none exposes a
    protected directory; an optional mount that does not exist is left out, any other is
    refused (both backends)."""
    cwd = str(recipe.cwd)
    mounts = []
    for mount in recipe.mounts:
        # Checked first: whether a protected path exists is none of the step's business.
        protected.check(mount.source, recipe.phase, cwd)
        if not os.path.exists(mount.source):
            if mount.optional:
                continue
            raise SandboxError(
                f"the {recipe.phase} step mounts {mount.source}, which does not exist on "
                "this worker"
            )
        mounts.append(mount)
    return mounts


@dataclass
class Launch:
    """What the executor starts for one step."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    #: Descriptors the process inherits (a configuration passed through a memfd, say);
    #: closed by :meth:`close` once the process has started.
    pass_fds: tuple[int, ...] = ()
    #: Host directories that must be handed to the sandbox's user before the start, and
    #: may be large (a cache the worker filled before the sandbox was on): done off the
    #: event loop.
    handover: Sequence[str] = field(default_factory=tuple)

    def close(self) -> None:
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)


class Backend(Protocol):
    """A sandbox: ``none`` (the process as is), ``bwrap`` or ``nsjail``."""

    @property
    def name(self) -> str: ...

    @property
    def isolates(self) -> bool:
        """Whether steps run isolated (``False`` only for ``none``)."""
        ...

    def launch(
        self, recipe: Recipe, *, network: bool, limits: Limits, nested_namespaces: bool = False
    ) -> Launch:
        """The process to start for ``recipe``; raise :class:`SandboxError` when it cannot
        be started as asked. Fast: it runs on the event loop for every step.
        ``nested_namespaces``: the process is a warm parent (:mod:`gristmill.warm`), which
        needs to create one user namespace per child; a backend that cannot allow that
        raises :class:`SandboxError`."""
        ...

    def handover(self, paths: Sequence[str]) -> None:
        """Make ``paths`` (from :attr:`Launch.handover`) the sandbox user's; may be slow."""
        ...

    def close(self) -> None:
        """Release what the backend holds between steps (the staging namespace's holder
        process, see :mod:`gristmill.sandbox.reach`); the worker's last call."""
        ...

    def exit_status(self, returncode: int) -> int:
        """The step's own exit status from the started process's (negative: a signal)."""
        ...

    def explain(self, recipe: Recipe, returncode: int, output_tail: str) -> str | None:
        """A line saying why a step that failed failed, when the cause is the sandbox."""
        ...
