"""Helpers for runtimes declaring what their steps need to see inside the sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterable

from gristmill.sandbox.spec import SYSTEM_DIRS, Mount, is_under

__all__ = ["toolchain_mounts"]


def toolchain_mounts(
    *paths: str | os.PathLike[str] | None, prefixes: Iterable[str] = ()
) -> list[Mount]:
    """Read-only mounts that make the programs ``paths`` runnable inside the sandbox.

    For each program outside the system directories (which every step sees), its directory,
    and when it is a link (``node_modules/.bin/bun``, a pyenv shim), the directory of what it
    points to. ``prefixes`` are whole trees to mount as they are (an interpreter's prefix
    with its standard library, GOROOT). ``None`` entries are skipped, and so are duplicates
    and directories already inside another mount.
    """
    wanted: list[str] = [os.path.abspath(p) for p in prefixes]
    for path in paths:
        if path is None:
            continue
        program = os.path.abspath(os.fspath(path))
        for candidate in (program, os.path.realpath(program)):
            wanted.append(os.path.dirname(candidate))
    mounts: list[Mount] = []
    for directory in sorted(set(wanted), key=len):
        if any(is_under(directory, system) for system in SYSTEM_DIRS):
            continue
        if any(is_under(directory, m.source) for m in mounts):
            continue
        mounts.append(Mount(directory))
    return mounts
