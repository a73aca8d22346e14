"""Deprecated location of signature -> JSON schema, kept so that a runtime written against plugin API 1
keeps working: import these names from :mod:`gristmill` instead."""

from __future__ import annotations

from gristmill.runtimes.schema import (
    JSON_SCHEMA_DIALECT,
    ArgumentError,
    empty_schema,
    property_for_typ,
    signature_to_schema,
    validate_args,
)

__all__ = [
    "JSON_SCHEMA_DIALECT",
    "ArgumentError",
    "empty_schema",
    "property_for_typ",
    "signature_to_schema",
    "validate_args",
]
