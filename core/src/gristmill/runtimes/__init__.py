"""Languages: the contract a runtime plugin implements, the registry that holds the runtimes
of a process, the language-neutral signature, JSON schema from signatures, and the default
result protocol.

Plugins import these names from :mod:`gristmill` itself (the public API); the core imports
them from here.
"""

from __future__ import annotations

from gristmill.runtimes.contract import (
    ARGS_FILE,
    PLUGIN_API_VERSION,
    RESULT_FILE,
    DependencyLocking,
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    RecipeError,
    ResourceReferences,
    Runtime,
    ScriptError,
    Toolchain,
    WarmSpec,
    WarmStart,
)
from gristmill.runtimes.registry import (
    DuplicateRuntimeError,
    RegisteredRuntime,
    RuntimeRegistry,
    UnknownRuntimeError,
)
from gristmill.runtimes.results import error_result, read_result_file, read_result_text

__all__ = [
    "ARGS_FILE",
    "PLUGIN_API_VERSION",
    "RESULT_FILE",
    "DependencyLocking",
    "DuplicateRuntimeError",
    "JobContext",
    "JobOutcome",
    "Limits",
    "Mount",
    "ProcessExit",
    "Recipe",
    "RecipeError",
    "RegisteredRuntime",
    "ResourceReferences",
    "Runtime",
    "RuntimeRegistry",
    "ScriptError",
    "Toolchain",
    "UnknownRuntimeError",
    "WarmSpec",
    "WarmStart",
    "error_result",
    "read_result_file",
    "read_result_text",
]
