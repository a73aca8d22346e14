"""The core's trigger kinds, registered through the ``register_trigger_kinds`` hook as a
plugin's would be (see :func:`gristmill.plugins.build_plugin_manager`)."""

from __future__ import annotations

from collections.abc import Callable

from gristmill.hookspecs import hookimpl
from gristmill.triggers.http import HttpRouteKind
from gristmill.triggers.kinds import TriggerKind
from gristmill.triggers.postgres import PostgresKind

__all__ = ["register_trigger_kinds"]


@hookimpl
def register_trigger_kinds(register: Callable[[TriggerKind], None]) -> None:
    """HTTP routes and the Postgres trigger (schedules have their own table and routes)."""
    register(PostgresKind())
    register(HttpRouteKind())
