"""Registers the Python runtime with Gristmill."""

from __future__ import annotations

from collections.abc import Callable

from gristmill import Runtime, hookimpl

from gristmill_python.runtime import PythonRuntime


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    register(PythonRuntime())
