"""Registers the PostgreSQL runtime with Gristmill."""

from __future__ import annotations

from collections.abc import Callable

from gristmill import Runtime, hookimpl

from gristmill_sql.runtime import PostgresRuntime


@hookimpl
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    register(PostgresRuntime())
