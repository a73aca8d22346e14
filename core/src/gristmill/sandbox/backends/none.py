"""The ``none`` backend: the step's process as is, on the worker's machine.

For development only, and chosen explicitly (``GRISTMILL_SANDBOX=none``; the worker logs a
warning at start). The executor still gives the process its own session and kills the
whole group on timeout or cancel, and caps logs and results, but nothing else holds: the job
runs as the worker's user, sees its files and its processes, and the recipe's mounts,
limits and network policy are not applied. This path is kept exactly as fast as before the
sandbox existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gristmill.sandbox.base import Launch
from gristmill.sandbox.spec import Limits

if TYPE_CHECKING:
    from gristmill.runtimes import Recipe

__all__ = ["NoSandbox"]


class NoSandbox:
    name = "none"
    isolates = False

    def launch(
        self, recipe: Recipe, *, network: bool, limits: Limits, nested_namespaces: bool = False
    ) -> Launch:
        return Launch(list(recipe.argv), dict(recipe.env), str(recipe.cwd))

    def close(self) -> None:
        return None

    def handover(self, paths: Sequence[str]) -> None:
        return None

    def exit_status(self, returncode: int) -> int:
        return returncode

    def explain(self, recipe: Recipe, returncode: int, output_tail: str) -> str | None:
        return None
