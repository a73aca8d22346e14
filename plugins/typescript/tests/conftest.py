"""Fixtures shared by the TypeScript plugin's tests that install packages for real."""

from __future__ import annotations

import socket

import pytest
from gristmill.testing.contract import require_toolchain
from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime

REGISTRY = ("registry.npmjs.org", 443)


@pytest.fixture(scope="module")
def registry() -> None:
    """Fail at once, and clearly, when the npm registry cannot be reached: the lock would
    otherwise fail with the resolver's own (less clear) message."""
    try:
        socket.create_connection(REGISTRY, timeout=5).close()
    except OSError as exc:
        pytest.fail(f"the npm registry {REGISTRY[0]} is not reachable from this machine: {exc}")


@pytest.fixture(scope="module")
def bun() -> BunRuntime:
    runtime = BunRuntime()
    require_toolchain(runtime)
    return runtime


@pytest.fixture(scope="module")
def deno() -> DenoRuntime:
    runtime = DenoRuntime()
    require_toolchain(runtime)
    return runtime
