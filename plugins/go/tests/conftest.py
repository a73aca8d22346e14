"""One Go build cache for the whole test session.

A Go build cache starts empty and fills with the standard library's compiled packages (about
10 s on two cores); every later build takes a fraction of a second. The tests of compiled
programs (the runtime's own cache) each use directories of their own.

The cache is shared by unsandboxed and sandboxed builds, so it lives where the sandbox's user
can reach it (run as root, sandboxes run as uid 65534, and pytest's own temporary
directories are private to root), outside /tmp (private inside a sandbox).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def go_build_cache() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="gm-go-build-cache-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
