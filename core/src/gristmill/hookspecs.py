"""The hooks a Gristmill plugin can implement.

Each hook is documented with its exact signature in docs/plugins.md (a test keeps the two in
sync). Runtimes enter through ``register_runtimes``; the other hooks broadcast to every plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    from fastapi import FastAPI

    from gristmill.runtimes import JobContext, Runtime
    from gristmill.triggers.kinds import TriggerKind

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("gristmill")
hookimpl = pluggy.HookimplMarker("gristmill")


@hookspec
def register_runtimes(register: Callable[[Runtime], None]) -> None:
    """Add language runtimes by calling ``register(runtime)`` once per runtime.

    :param register: takes an object implementing :class:`gristmill.runtimes.Runtime`.
    """


@hookspec
def register_trigger_kinds(register: Callable[[TriggerKind], None]) -> None:
    """Add trigger kinds by calling ``register(kind)`` once per kind.

    :param register: takes a :class:`gristmill.TriggerKind` instance.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``gristmill`` command line.

    :param cli: the top-level click group; use ``@cli.command()``.
    """


@hookspec
def register_routes(app: FastAPI) -> None:
    """Add HTTP routes to the API, e.g. ``app.include_router(router, prefix="/api/ext/x")``.

    :param app: the FastAPI application, before it starts serving.
    """


@hookspec
def job_env(job: JobContext) -> Mapping[str, str] | None:
    """Return extra environment variables for a job's process (or ``None``).

    Results of all plugins are merged; a later plugin wins on a clash. The job variables of
    the core (``WM_*``) cannot be overridden.

    :param job: the job about to run (its ``env`` holds the core's variables).
    """
