"""Gristmill: scripts become web forms, APIs, jobs and flows.

The public API for plugins is what this module exports; everything else is internal.
"""

from __future__ import annotations

from gristmill.hookspecs import hookimpl
from gristmill.runtime import (
    PLUGIN_API_VERSION,
    DependencyLocking,
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    RecipeError,
    Runtime,
    ScriptError,
    Toolchain,
    error_result,
    read_result_file,
)
from gristmill.sandbox.toolchain import toolchain_mounts
from gristmill.signature import Arg, Signature

__version__ = "0.1.0"

__all__ = [
    "PLUGIN_API_VERSION",
    "Arg",
    "DependencyLocking",
    "JobContext",
    "JobOutcome",
    "Limits",
    "Mount",
    "ProcessExit",
    "Recipe",
    "RecipeError",
    "Runtime",
    "ScriptError",
    "Signature",
    "Toolchain",
    "__version__",
    "error_result",
    "hookimpl",
    "read_result_file",
    "toolchain_mounts",
]
