"""Registers the TypeScript runtimes, Bun and Deno, with Gristmill."""

from __future__ import annotations

from collections.abc import Callable

from gristmill import Runtime, hookimpl

from gristmill_typescript.bun import BunRuntime
from gristmill_typescript.deno import DenoRuntime


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    register(BunRuntime())
    register(DenoRuntime())
