"""Mounting into sandboxes what the sandbox's user cannot reach (a root worker's), for both
backends.

A root worker starts its sandboxes as an unprivileged user (65533), and bwrap and nsjail make
their mounts as that user, so a toolchain under a directory other users cannot enter (a
pyenv Python under /root, mode 0700) cannot be mounted by its path. A descriptor opened by
the worker does not help either: bwrap resolves ``--ro-bind-fd``'s descriptor back to its
path and walks it as its user, and nsjail mounts in a new mount namespace, where the kernel
refuses to bind a mount of another namespace (``mount('/proc/self/fd/N' -> ...): Invalid
argument``).

So such a directory is first bound, read-only, onto an empty directory the sandbox's user
can reach (``<data dir>/sandbox/reach/<hash>``), in a mount namespace of the worker's own:
one long-lived holder process (``sleep``) in a private copy of the host's mounts, which
receives the host's later mounts (``--propagation slave``) but shows none of its own to the
host. The steps that need such a mount start the sandbox inside that namespace
(``nsenter``); it then mounts the staged path like any other, read-only, at the toolchain's
own path (:func:`mount_source` says which path, for both backends).
Nothing changes for the host: outside that namespace the staging directories are empty, and
the holder dies with the worker (``setpriv --pdeathsig``).

A job sees exactly the directory its runtime declared, with its own permissions, and none
of its parents (the rest of /root stays out of reach). Only read-only mounts go this way: a
directory a step writes is handed to the sandbox's user, and one it could not even reach is
not the worker's to give away.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

from gristmill.sandbox.base import SandboxError
from gristmill.sandbox.hostpaths import blocking_dir
from gristmill.sandbox.spec import Mount

__all__ = ["ReachableViews", "mount_source"]

_START_TIMEOUT_S = 5.0


class ReachableViews:
    """Read-only views of unreachable host paths, in the worker's own mount namespace."""

    def __init__(
        self, staging: Path, *, setpriv: str, unshare: str, nsenter: str, mount: str
    ) -> None:
        self.staging = staging
        self._setpriv = setpriv
        self._unshare = unshare
        self._nsenter = nsenter
        self._mount = mount
        self._holder: subprocess.Popen[bytes] | None = None
        #: source -> (its (device, inode) when staged, the staged path)
        self._staged: dict[str, tuple[tuple[int, int], str]] = {}
        self._lock = threading.Lock()

    def namespace(self) -> str:
        """The namespace file to start nsjail in (for ``nsenter --mount=``)."""
        holder = self._holder
        assert holder is not None, "stage() first"
        return f"/proc/{holder.pid}/ns/mnt"

    def enter(self) -> list[str]:
        """The argv prefix that starts a program in the namespace of the staged views."""
        return [self._nsenter, f"--mount={self.namespace()}", "--"]

    def stage(self, source: str) -> str:
        """The reachable path at which ``source`` is visible in the namespace (bound there
        on first use; kept while the holder lives, and bound again if ``source`` was
        replaced: a bind follows the directory it was made of, not its path)."""
        with self._lock:
            self._ensure_holder()
            st = os.stat(source)
            identity = (st.st_dev, st.st_ino)
            staged = self._staged.get(source)
            if staged is not None and staged[0] == identity:
                return staged[1]
            name = hashlib.sha256(f"{source}\0{st.st_dev}:{st.st_ino}".encode()).hexdigest()
            target = self.staging / name[:24]
            if os.path.isdir(source):
                target.mkdir(mode=0o755, exist_ok=True)
            elif not target.exists():
                target.touch(mode=0o644)
            done = subprocess.run(
                [*self.enter(), self._mount, "--bind", "-o", "ro", source, str(target)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode != 0:
                raise SandboxError(
                    f"could not make {source} visible to the sandbox's user: "
                    f"{(done.stderr or done.stdout).strip()}"
                )
            self._staged[source] = (identity, str(target))
            return str(target)

    def _ensure_holder(self) -> None:
        if self._holder is not None and self._holder.poll() is None:
            return
        # A new namespace: whatever was bound in a dead holder's is gone with it.
        self._staged.clear()
        self.staging.mkdir(parents=True, exist_ok=True)
        self.staging.chmod(0o755)
        self._holder = subprocess.Popen(
            [
                self._setpriv,
                "--pdeathsig",
                "KILL",
                "--",
                self._unshare,
                "--mount",
                "--propagation",
                "slave",
                "--",
                "sleep",
                "infinity",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_for_namespace(self._holder)

    def _wait_for_namespace(self, holder: subprocess.Popen[bytes]) -> None:
        """Wait until the holder runs ``sleep`` (so ``unshare`` made and configured its
        namespace): binding before that would bind on the host."""
        ours = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if holder.poll() is not None:
                assert holder.stderr is not None
                raise SandboxError(
                    "could not create the mount namespace that makes unreachable toolchains "
                    f"visible to the sandbox's user: {holder.stderr.read().decode().strip()}"
                )
            try:
                comm = Path(f"/proc/{holder.pid}/comm").read_text().strip()
                theirs = os.readlink(f"/proc/{holder.pid}/ns/mnt")
            except OSError:
                comm, theirs = "", ours
            if comm == "sleep" and theirs != ours:
                return
            time.sleep(0.005)
        holder.kill()
        holder.wait()
        raise SandboxError("the mount namespace holder did not start in time")

    def close(self) -> None:
        with self._lock:
            if self._holder is not None and self._holder.poll() is None:
                self._holder.kill()
                self._holder.wait()
            self._holder = None
            self._staged.clear()


def mount_source(
    mount: Mount,
    phase: str,
    run_as: tuple[int, int] | None,
    reach: ReachableViews | None,
) -> str:
    """Where the sandbox finds ``mount``'s source: the path itself when the sandbox's user
    can walk to it (or the worker is not root), else its staged view. A writable mount the
    user cannot reach, or any when nothing can stage it, is refused naming the blocking
    directory."""
    if run_as is None:
        return mount.source
    uid, gid = run_as
    blocked = blocking_dir(mount.source, uid, gid)
    if blocked is None:
        return mount.source
    if mount.writable or reach is None:
        mode = oct(os.stat(blocked).st_mode & 0o777)
        what = " writable, which" if mount.writable else ", which"
        raise SandboxError(
            f"the {phase} step mounts {mount.source}{what} the sandbox's user (uid "
            f"{uid}) cannot reach: {blocked} (mode {mode}) does not let other users "
            f"through. Move it under a directory all users can enter, or allow them "
            f"(chmod o+x {blocked})"
        )
    return reach.stage(mount.source)
