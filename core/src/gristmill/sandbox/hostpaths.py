"""Host paths and the sandbox's user: can it reach them, opening the way to those it cannot,
and handing directories over.

When the worker runs as root, the sandbox is started as an unprivileged user (see
:mod:`gristmill.sandbox.backends.bwrap`), which must own the directories a step writes (its job
directory, a cache in a lock or install step) and be able to walk to every path it mounts.
Read-only mounts it cannot walk to (a toolchain under ``/root``, mode 0700: a pyenv Python, a
virtualenv) are staged for it by the root worker (:mod:`gristmill.sandbox.reach`), without
changing any permission on the host.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["blocking_dir", "chown_tree", "is_owned_by"]

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
