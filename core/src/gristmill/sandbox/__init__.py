"""Sandboxes for job steps: a recipe's mounts, limits and network, rendered by a backend.

- :mod:`~gristmill.sandbox.spec`: :class:`Mount`, :class:`Limits` and their checks (data only);
- :mod:`~gristmill.sandbox.base`: the :class:`Backend` interface the executor uses;
- backends: :mod:`~gristmill.sandbox.backends.bwrap` (default on Linux), :mod:`~gristmill.sandbox.backends.nsjail`,
  :mod:`~gristmill.sandbox.backends.none` (development);
- :mod:`~gristmill.sandbox.policy`: a worker's choices (backend, network, caps) and the
  selection of its backend from the settings.

docs/security.md states the threat model and what each backend guarantees.
"""

from __future__ import annotations

from gristmill.sandbox.base import Backend, Launch, SandboxError, SandboxUnavailable
from gristmill.sandbox.policy import RunPolicy, select_backend
from gristmill.sandbox.spec import Limits, Mount, RecipeError
from gristmill.sandbox.toolchain import toolchain_mounts

__all__ = [
    "Backend",
    "Launch",
    "Limits",
    "Mount",
    "RecipeError",
    "RunPolicy",
    "SandboxError",
    "SandboxUnavailable",
    "select_backend",
    "toolchain_mounts",
]
