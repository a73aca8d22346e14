"""Gristmill: scripts become web forms, APIs, jobs and flows.

This module is the public API for plugins: a runtime imports what it needs from ``gristmill``
itself, never from a submodule (a test checks the bundled plugins and the third-party
example). Everything else is internal and may move; docs/plugins.md documents each name.
"""

from __future__ import annotations

from gristmill.errors import GristmillError, JobErrorName
from gristmill.hookspecs import hookimpl
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
    Runtime,
    ScriptError,
    Toolchain,
)
from gristmill.runtimes.results import error_result, read_result_file
from gristmill.runtimes.schema import (
    ArgumentError,
    property_for_typ,
    signature_to_schema,
    validate_args,
)
from gristmill.runtimes.signature import (
    ANY,
    BOOL,
    BYTES,
    DATE,
    DATETIME,
    EMAIL,
    FLOAT,
    FUNCTION_CALL_DEFAULT,
    INT,
    SQL,
    STR,
    Arg,
    DynSelectType,
    ListType,
    ObjectType,
    OneOfType,
    Prop,
    ResourceType,
    Scalar,
    ScalarKind,
    Signature,
    StrType,
    Typ,
    infer_typ_from_value,
    signature_from_json,
    signature_to_json,
    typ_from_json,
    typ_to_json,
)
from gristmill.sandbox.toolchain import toolchain_mounts

__version__ = "0.1.0"

__all__ = [
    "ANY",
    "ARGS_FILE",
    "BOOL",
    "BYTES",
    "DATE",
    "DATETIME",
    "EMAIL",
    "FLOAT",
    "FUNCTION_CALL_DEFAULT",
    "INT",
    "PLUGIN_API_VERSION",
    "RESULT_FILE",
    "SQL",
    "STR",
    "Arg",
    "ArgumentError",
    "DependencyLocking",
    "DynSelectType",
    "GristmillError",
    "JobContext",
    "JobErrorName",
    "JobOutcome",
    "Limits",
    "ListType",
    "Mount",
    "ObjectType",
    "OneOfType",
    "ProcessExit",
    "Prop",
    "Recipe",
    "RecipeError",
    "ResourceType",
    "Runtime",
    "Scalar",
    "ScalarKind",
    "ScriptError",
    "Signature",
    "StrType",
    "Toolchain",
    "Typ",
    "__version__",
    "error_result",
    "hookimpl",
    "infer_typ_from_value",
    "property_for_typ",
    "read_result_file",
    "signature_from_json",
    "signature_to_json",
    "signature_to_schema",
    "toolchain_mounts",
    "typ_from_json",
    "typ_to_json",
    "validate_args",
]
