"""One Go build cache for the whole test session.

A Go build cache starts empty and fills with the standard library's compiled packages (about
10 s on two cores); every later build takes a fraction of a second. The tests of compiled
programs (the runtime's own cache) each use directories of their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def go_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("go-build-cache")
