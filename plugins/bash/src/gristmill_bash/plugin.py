"""Registers the Bash runtime with Gristmill."""

from __future__ import annotations

from collections.abc import Callable

from gristmill import Runtime, hookimpl

from gristmill_bash.runtime import BashRuntime


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    register(BashRuntime())
