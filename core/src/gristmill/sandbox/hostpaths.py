"""Host paths and the sandbox's user: can it reach them, opening the way to those it cannot,
and handing directories over.

When the worker runs as root, the sandbox is started as an unprivileged user (see
:mod:`gristmill.sandbox.backends.bwrap`), which must own the directories a step writes (its job
directory, a cache in a lock or install step) and be able to walk to every path it mounts.
Read-only mounts it cannot walk to (a toolchain under ``/root``, mode 0700: a pyenv Python, a
virtualenv) are opened for it by the root worker (:func:`opening_for`), without changing any
permission on the host.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gristmill.sandbox.spec import is_under

__all__ = ["Opening", "blocking_dir", "chown_tree", "is_owned_by", "opening_for"]

_NEVER_CHOWN = frozenset(
    {"/", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/var", "/root", "/home", "/tmp"}
)


def _allows(
    st: os.stat_result, uid: int, gid: int, bit_owner: int, bit_group: int, bit_other: int
) -> bool:
    if uid == 0:
        return True
    if st.st_uid == uid:
        return bool(st.st_mode & bit_owner)
    if st.st_gid == gid:
        return bool(st.st_mode & bit_group)
    return bool(st.st_mode & bit_other)


def blocking_dir(path: str, uid: int, gid: int) -> str | None:
    """The first directory on the way to ``path`` that ``uid``/``gid`` may not pass (no
    search permission), or ``None`` when it can reach ``path``. ACLs are not read."""
    current = Path(path)
    for parent in reversed(current.parents):
        try:
            st = os.stat(parent)
        except OSError:
            return None  # a missing path is reported as missing, not as unreachable
        if not _allows(st, uid, gid, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return str(parent)
    return None


@dataclass(frozen=True)
class Opening:
    """How a privileged process shows the sandbox's user the read-only paths it cannot walk
    to, in a mount namespace of its own (never the host's): over each blocking directory
    (``covers``) an empty tmpfs, in it the ``dirs`` leading to each path (mode 0755, created
    in order), and each path of ``binds`` bound read-only at its own place.

    In that namespace the sandbox's user reaches exactly the bound subtrees: the blocking
    directory's other entries are hidden by the tmpfs, nothing is writable, and no permission
    changes on the host. A backend renders it before dropping privileges (bwrap: a first,
    root bwrap, see :mod:`gristmill.sandbox.backends.bwrap`).

    Why not pass the directories as descriptors (``bwrap --ro-bind-fd``): bwrap resolves a
    descriptor's ``/proc/self/fd/N`` back to its path with ``realpath()`` and mounts that path
    (the kernel does not let it mount a descriptor from another user namespace), so the walk
    through the blocking directory fails the same way ("Can't find source path
    /proc/self/fd/3: Permission denied", bubblewrap 0.11).
    """

    covers: tuple[str, ...]
    dirs: tuple[str, ...]
    binds: tuple[str, ...]


def opening_for(sources: Iterable[str], uid: int, gid: int) -> Opening | None:
    """The :class:`Opening` that makes ``sources`` (host paths to be mounted read-only)
    reachable by ``uid``/``gid``, or ``None`` when it reaches every one already. A few
    ``stat`` calls per path: cheap enough for every step, so nothing is cached (a toolchain
    moved or a permission changed is seen at the next step)."""
    covers: list[str] = []
    dirs: list[str] = []
    binds: list[str] = []
    for source in sorted(set(sources), key=lambda path: (len(path), path)):
        blocked = blocking_dir(source, uid, gid)
        if blocked is None:
            continue
        if any(is_under(source, bound) for bound in binds):
            continue  # inside a subtree already bound
        # The first blocking directory on the way: two of them are never one inside the other.
        if blocked not in covers:
            covers.append(blocked)
        # The directories between the tmpfs and the path, which bwrap would create 0700.
        for parent in reversed(Path(source).parents):
            text = str(parent)
            if text != blocked and is_under(text, blocked) and text not in dirs:
                dirs.append(text)
        binds.append(source)
    if not binds:
        return None
    return Opening(tuple(covers), tuple(dirs), tuple(binds))


def is_owned_by(path: str, uid: int) -> bool:
    try:
        return os.stat(path).st_uid == uid
    except OSError:
        return True  # missing: nothing to hand over (the mount check reports it)


def chown_tree(path: str, uid: int, gid: int) -> None:
    """Give ``path`` and everything below it (without following links) to ``uid``/``gid``."""
    if os.path.realpath(path) in _NEVER_CHOWN:
        # A recipe is validated before this (its writable paths are never system
        # directories); this is the last line against handing the machine to a job.
        raise ValueError(f"refusing to give {path} to the sandbox's user")
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
            except FileNotFoundError:
                continue
