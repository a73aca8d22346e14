"""Deprecated location of the runtime contract, kept so that a runtime written against plugin API 1
keeps working: import these names from :mod:`gristmill` instead."""

from __future__ import annotations

from gristmill.runtimes import (
    ARGS_FILE,
    PLUGIN_API_VERSION,
    RESULT_FILE,
    DependencyLocking,
    DuplicateRuntimeError,
    JobContext,
    JobOutcome,
    Limits,
    Mount,
    ProcessExit,
    Recipe,
    RecipeError,
    RegisteredRuntime,
    Runtime,
    RuntimeRegistry,
    ScriptError,
    Toolchain,
    UnknownRuntimeError,
    error_result,
    read_result_file,
)

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
    "Runtime",
    "RuntimeRegistry",
    "ScriptError",
    "Toolchain",
    "UnknownRuntimeError",
    "error_result",
    "read_result_file",
]
