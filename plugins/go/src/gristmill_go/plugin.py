"""Registers the Go runtime with Gristmill."""

from __future__ import annotations

from collections.abc import Callable

from gristmill import Runtime, hookimpl

from gristmill_go.runtime import GoRuntime


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    register(GoRuntime())
